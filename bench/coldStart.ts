/**
 * Cold start on the Node version Azure runs (22): bare `node` start, loading the function module
 * (dist/ and, when one was built, the deployment bundle), and cold event latency (process start to
 * the first verified revocation) against warm event latency, in the same run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startAzuriteTable } from '../dev/azurite';
import { startGraphStandIn } from '../dev/graph-standin/index';
import { startManagedIdentityStandIn } from '../dev/identity-standin/index';
import { startServiceBusStandIn } from '../dev/servicebus-standin/index';
import { GraphPermissions } from '../shared/adapters/graphPermissions';
import { median, round } from './stats';

const ROOT = join(__dirname, '..', '..');
/** The Node 22 release CI uses; `npx -p node@...` fetches it once into the npm cache. */
export const NODE22_PACKAGE = 'node@22.23.3';

/** Where a deployment bundle may have been built (first found wins). */
const BUNDLE_CANDIDATES = [
  'dist/deploy/main.js',
  'dist/bundle/index.js',
  'dist/bundle/functions/index.js',
  'dist-bundle/index.js',
  'dist-bundle/functions/index.js',
  'bundle/index.js',
  'build/index.js',
];

export interface ColdStartResult {
  node: string;
  runs: number;
  bareNodeMs: number;
  appMs: number;
  ratio: number;
  bundle?: { path: string; loadMs: number; ratio: number };
  coldEventMs: number;
  warmEventMs: number;
}

export function findBundle(): string | undefined {
  return BUNDLE_CANDIDATES.find((path) => existsSync(join(ROOT, path)));
}

/** The path of the Node 22 binary (npx caches the package; later calls are quick). */
export function node22Path(): string {
  const result = spawnSync('npx', ['-y', '-p', NODE22_PACKAGE, 'node', '-p', 'process.execPath'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  const path = result.stdout.trim().split('\n').at(-1);
  if (result.status !== 0 || !path) {
    throw new Error(`could not get ${NODE22_PACKAGE} through npx: ${result.stderr}`);
  }
  return path;
}

function timeProcess(node: string, args: string[], env: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(node, args, { cwd: ROOT, env, stdio: 'ignore' });
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited with ${result.status}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** Spawn to the child's `cold-done` line, and the warm latency it reports afterwards. */
function timeColdEvent(
  node: string,
  env: NodeJS.ProcessEnv,
  users: [string, string],
): Promise<{ coldMs: number; warmMs: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    let coldMs: number | undefined;
    let output = '';
    let errors = '';
    const child = spawn(node, [join(ROOT, 'dist/bench/coldEvent.js'), ...users], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (coldMs === undefined && output.includes('cold-done\n')) {
        coldMs = Number(process.hrtime.bigint() - started) / 1e6;
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = output.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || coldMs === undefined || !last.startsWith('{')) {
        reject(new Error(`cold event run failed (${code}): ${errors.slice(-2000)}`));
        return;
      }
      resolve({ coldMs, warmMs: (JSON.parse(last) as { warmEventMs: number }).warmEventMs });
    });
  });
}

export async function measureColdStart(options: {
  runs: number;
  log: (line: string) => void;
}): Promise<ColdStartResult> {
  const { runs, log } = options;
  const node = node22Path();
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  log(`cold start: ${version}, ${runs} runs each`);

  // Real stand-ins without latency: what is measured is our start-up, not the network.
  const azurite = await startAzuriteTable();
  const serviceBus = await startServiceBusStandIn({
    queues: [{ name: 'employee-leaving' }, { name: 'mfa-enabled' }],
  });
  const graphPort = await freePort();
  const graph = await startGraphStandIn({
    port: graphPort,
    audience: `https://127.0.0.1:${graphPort}`,
    users: [],
  });
  const identity = await startManagedIdentityStandIn({ roles: Object.values(GraphPermissions) });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...identity.envFor(),
    GRAPH_ENDPOINT: graph.url,
    AUDIT_TABLE_CONNECTION_STRING: azurite.connectionString,
    ServiceBusConnection: serviceBus.connectionString,
    PROTECTED_USERS: 'breakglass@contoso.com',
  };
  try {
    const bare: number[] = [];
    const app: number[] = [];
    const bundled: number[] = [];
    const bundle = findBundle();
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < runs; i++) {
      // Interleaved, so drifting machine load hits every measure alike.
      bare.push(timeProcess(node, ['-e', '0'], env));
      app.push(timeProcess(node, ['-e', "require('./dist/functions/index.js')"], env));
      if (bundle) bundled.push(timeProcess(node, ['-e', `require('./${bundle}')`], env));
      const users = [0, 1].map((j) =>
        graph.addUser({
          id: `c01d0000-0000-4000-8000-${String(i * 2 + j).padStart(12, '0')}`,
          userPrincipalName: `cold${i}-${j}@contoso.com`,
        }),
      );
      const event = await timeColdEvent(node, env, [
        users[0]?.userPrincipalName ?? '',
        users[1]?.userPrincipalName ?? '',
      ]);
      cold.push(event.coldMs);
      warm.push(event.warmMs);
    }
    const bareNodeMs = median(bare);
    const appMs = median(app);
    return {
      node: version,
      runs,
      bareNodeMs: round(bareNodeMs, 0),
      appMs: round(appMs, 0),
      ratio: round(appMs / bareNodeMs),
      ...(bundle
        ? {
            bundle: {
              path: bundle,
              loadMs: round(median(bundled), 0),
              ratio: round(median(bundled) / bareNodeMs),
            },
          }
        : {}),
      coldEventMs: round(median(cold), 0),
      warmEventMs: round(median(warm), 0),
    };
  } finally {
    await Promise.all([serviceBus.stop(), graph.stop(), identity.stop(), azurite.stop()]);
  }
}
