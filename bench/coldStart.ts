/**
 * Cold start on the Node version Azure runs (22): bare `node` start, then for dist/ and for the
 * deployment bundle that ships (its first start on an instance, compile cache empty, and a later
 * start, cache written): module load, and cold event latency (process start to the first verified
 * revocation, through the function the module registered) against warm event latency, all in the
 * same run, interleaved. Also the module load of two floors (bench/floor/): the required SDKs
 * alone, bundled like the app, what no code of ours can go below.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startAzuriteTable } from '../dev/azurite';
import { startGraphStandIn } from '../dev/graph-standin/index';
import { startManagedIdentityStandIn } from '../dev/identity-standin/index';
import { startServiceBusStandIn } from '../dev/servicebus-standin/index';
import { GraphPermissions } from '../shared/adapters/graphPermissions';
import { OUTCOME_TOPIC } from './outcomeTopic';
import { median, round } from './stats';

const ROOT = join(__dirname, '..', '..');
/** The Node 22 release CI uses; `npx -p node@...` fetches it once into the npm cache. */
export const NODE22_PACKAGE = 'node@22.23.3';

/** The deployment bundle `npm run package` writes, the one `azd deploy` ships (azure.yaml). */
export const BUNDLE = 'dist/deploy/main.js';
/** The unbundled function module (package.json "main"), for comparison. */
const DIST = 'dist/functions/index.js';

/** Figures of one form of the app, medians of the runs. */
export interface ColdForm {
  /** Process start to the module loaded (settings validated, clients built, functions registered). */
  loadMs: number;
  ratio: number;
  /** Process start to the first departure's verified revocation. */
  coldEventMs: number;
  /** A second departure in the same process. */
  warmEventMs: number;
}

/** Module load of a floor (bench/floor/): the required SDKs alone, bundled as the app is. */
export interface FloorForm {
  loadMs: number;
  ratio: number;
}

export interface ColdStartResult {
  node: string;
  runs: number;
  bareNodeMs: number;
  /** The design card's packages (identity, Graph client, @azure/functions) and nothing of ours. */
  designCardFloor: FloorForm;
  /** The same plus the audit table's client. */
  auditTableFloor: FloorForm;
  /** dist/ as tsc writes it (node_modules resolved at run time). */
  dist: ColdForm;
  /** The shipped bundle on an instance's first start: Node's compile cache still empty. */
  bundleFirstStart: ColdForm;
  /** The shipped bundle when the process starts again on the same instance (cache written). */
  bundleCached: ColdForm;
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

/**
 * Packages a floor module with dev/package-app.mjs itself (`--entry`), so it is bundled and
 * started exactly as the app is; the path of its main.js.
 */
function packageFloor(entry: string, outDir: string): string {
  const out = join(outDir, entry);
  const result = spawnSync(
    process.execPath,
    ['dev/package-app.mjs', '--out', out, '--entry', `bench/floor/${entry}.ts`],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`packaging the ${entry} floor failed: ${result.stderr}`);
  return join(out, 'main.js');
}

/** Spawn to the child's `cold-done` line, and the warm latency it reports afterwards. */
function timeColdEvent(
  node: string,
  env: NodeJS.ProcessEnv,
  modulePath: string,
  users: [string, string],
): Promise<{ coldMs: number; warmMs: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    let coldMs: number | undefined;
    let output = '';
    let errors = '';
    const child = spawn(node, [join(ROOT, 'dist/bench/coldEvent.js'), modulePath, ...users], {
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
    topics: [{ name: OUTCOME_TOPIC, subscriptions: [] }],
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
    // Every run makes two departures per form; the guardrail's default (50 an hour) would hold
    // the ninth run's.
    GUARDRAIL_DEPARTURES_PER_WINDOW: String(50 + runs * 2 * 3),
  };
  if (!existsSync(join(ROOT, BUNDLE))) {
    throw new Error(`${BUNDLE} is missing: run \`npm run package\` first (npm run bench does)`);
  }
  // os.tmpdir() follows TMPDIR: each first start gets an empty compile cache directory of its
  // own, and the cached starts share one that the first of them wrote.
  const scratch = mkdtempSync(join(tmpdir(), 'bench-cold-'));
  const cachedTmp = join(scratch, 'cached');
  mkdirSync(cachedTmp);
  let fresh = 0;
  const freshTmp = () => {
    const dir = join(scratch, `fresh-${fresh++}`);
    mkdirSync(dir);
    return dir;
  };
  let user = 0;
  const twoUsers = (): [string, string] => {
    const upn = () => {
      const n = user++;
      return graph.addUser({
        id: `c01d0000-0000-4000-8000-${String(n).padStart(12, '0')}`,
        userPrincipalName: `cold${n}@contoso.com`,
      }).userPrincipalName;
    };
    return [upn(), upn()];
  };
  const forms = { dist: DIST, bundleFirstStart: BUNDLE, bundleCached: BUNDLE } as const;
  type Form = keyof typeof forms;
  const envOf = (form: Form): NodeJS.ProcessEnv => ({
    ...env,
    TMPDIR: form === 'bundleCached' ? cachedTmp : freshTmp(),
  });
  type Floor = 'designCardFloor' | 'auditTableFloor';
  try {
    const floors: Record<Floor, string> = {
      designCardFloor: packageFloor('designCard', scratch),
      auditTableFloor: packageFloor('withAuditTable', scratch),
    };
    // Writes the shared cache, as the first start on an instance does.
    timeProcess(node, ['-e', `require('./${BUNDLE}')`], envOf('bundleCached'));
    const bare: number[] = [];
    const floorLoads: Record<Floor, number[]> = { designCardFloor: [], auditTableFloor: [] };
    const samples = Object.fromEntries(
      Object.keys(forms).map((f) => [
        f,
        { load: [] as number[], cold: [] as number[], warm: [] as number[] },
      ]),
    ) as Record<Form, { load: number[]; cold: number[]; warm: number[] }>;
    for (let i = 0; i < runs; i++) {
      // Interleaved, so drifting machine load hits every measure alike.
      bare.push(timeProcess(node, ['-e', '0'], env));
      for (const [floor, path] of Object.entries(floors) as [Floor, string][]) {
        // A first start, as the bundle's: an empty compile cache.
        const load = timeProcess(node, ['-e', `require(${JSON.stringify(path)})`], {
          ...env,
          TMPDIR: freshTmp(),
        });
        floorLoads[floor].push(load);
      }
      for (const [form, path] of Object.entries(forms) as [Form, string][]) {
        const sample = samples[form];
        sample.load.push(timeProcess(node, ['-e', `require('./${path}')`], envOf(form)));
        const event = await timeColdEvent(node, envOf(form), path, twoUsers());
        sample.cold.push(event.coldMs);
        sample.warm.push(event.warmMs);
      }
    }
    const bareNodeMs = median(bare);
    const figures = (form: Form): ColdForm => {
      const sample = samples[form];
      const loadMs = median(sample.load);
      return {
        loadMs: round(loadMs, 0),
        ratio: round(loadMs / bareNodeMs),
        coldEventMs: round(median(sample.cold), 0),
        warmEventMs: round(median(sample.warm), 0),
      };
    };
    const floorOf = (floor: Floor): FloorForm => {
      const loadMs = median(floorLoads[floor]);
      return { loadMs: round(loadMs, 0), ratio: round(loadMs / bareNodeMs) };
    };
    return {
      node: version,
      runs,
      bareNodeMs: round(bareNodeMs, 0),
      designCardFloor: floorOf('designCardFloor'),
      auditTableFloor: floorOf('auditTableFloor'),
      dist: figures('dist'),
      bundleFirstStart: figures('bundleFirstStart'),
      bundleCached: figures('bundleCached'),
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    await Promise.all([serviceBus.stop(), graph.stop(), identity.stop(), azurite.stop()]);
  }
}
