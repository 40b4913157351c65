/**
 * The deployment package, built the way azd builds it: azd's Node.js support runs the package
 * manager's install, then only the `build` script (in its build step and again in its package
 * step), then ships the folder named by `dist` in azure.yaml and fails when it is empty or missing
 * (Azure/azure-dev, cli/azd/pkg/project/framework_service_node.go). So here: a fresh copy of the
 * checkout (tracked files only, as a clone has), `npm ci`, `npm run build` twice, then the folder.
 * What azd ships is the bundle, its lazy parts, main.js, host.json and package.json, nothing
 * else, and it loads on its own (no node_modules) and registers every function.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildInfraContract } from '../../dev/infra-contract';
import { startWorld } from '../support/world';

const ROOT = join(__dirname, '..', '..');
const contract = buildInfraContract();
/** The folder azd ships: `dist` of the service in azure.yaml. */
const DIST = /^ {4}dist: (\S+)$/m.exec(readFileSync(join(ROOT, 'azure.yaml'), 'utf8'))?.[1];
let checkout: string;
let out: string;
const builds: string[] = [];

/** npm as azd runs it: in the checkout, without what the `npm test` that started us exported. */
function npm(args: string[]): string {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(npm_|INIT_CWD$)/i.test(name)),
  );
  const result = spawnSync('npm', args, {
    cwd: checkout,
    encoding: 'utf8',
    env: { ...env, npm_config_audit: 'false', npm_config_fund: 'false' },
  });
  if (result.status !== 0)
    throw new Error(`npm ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

beforeAll(() => {
  if (DIST === undefined) throw new Error('azure.yaml names no dist folder');
  checkout = mkdtempSync(join(tmpdir(), 'azd-checkout-'));
  // What a clone holds: the tracked files (as they are in this working tree), nothing built.
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file !== '' && existsSync(join(ROOT, file)));
  for (const file of tracked) {
    mkdirSync(dirname(join(checkout, file)), { recursive: true });
    cpSync(join(ROOT, file), join(checkout, file));
  }
  // azd's restore (npm's install runs `prepare`, our build), then its build and package steps.
  npm(['ci', '--prefer-offline']);
  builds.push(npm(['run', 'build']));
  // A leftover from an older build must not be shipped.
  writeFileSync(join(checkout, DIST, 'stale.js'), '// an older build\n');
  builds.push(npm(['run', 'build']));
  out = join(checkout, DIST);
}, 300_000);
afterAll(() => rmSync(checkout, { recursive: true, force: true }));

test("azd's build step (the `build` script, nothing else) writes the folder azure.yaml ships", () => {
  expect(DIST).toBe('dist/deploy');
  for (const output of builds) expect(output).toMatch(/Packaged functions\/index into /);
  expect(existsSync(join(out, 'stale.js'))).toBe(false);
});

test('the package holds the bundle, its lazy parts, its entry, host.json and package.json only', () => {
  expect(readdirSync(out).sort()).toEqual([
    'app.js',
    'host.json',
    'lazy',
    'main.js',
    'package.json',
  ]);
  // One file per SDK our code loads on first use (a require() in shared/, not an import).
  expect(readdirSync(join(out, 'lazy')).sort()).toEqual([
    'azure-service-bus.js',
    'azure-storage-blob.js',
  ]);
  expect(readFileSync(join(out, 'host.json'), 'utf8')).toBe(
    readFileSync(join(ROOT, 'host.json'), 'utf8'),
  );
  const manifest = JSON.parse(readFileSync(join(out, 'package.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  expect(manifest.main).toBe('main.js');
  expect(manifest).not.toHaveProperty('dependencies');
  expect(manifest).not.toHaveProperty('devDependencies');
});

const requiredBy = (file: string) =>
  new Set(
    [...readFileSync(join(out, file), 'utf8').matchAll(/\brequire\(["']([^"']+)["']\)/g)].map(
      (m) => m[1] as string,
    ),
  );

test('the bundle requires nothing but Node built-ins, the host-supplied functions-core and its lazy parts', () => {
  const required = requiredBy('app.js');
  expect(required).toContain('@azure/functions-core');
  expect(
    [...required].filter((id) => !isBuiltin(id) && id !== '@azure/functions-core').sort(),
  ).toEqual(['./lazy/azure-service-bus.js', './lazy/azure-storage-blob.js']);
  for (const lazy of readdirSync(join(out, 'lazy'))) {
    expect([...requiredBy(join('lazy', lazy))].filter((id) => !isBuiltin(id))).toEqual([]);
  }
});

test('the SDKs loaded on first use are not in the bundle every start reads', () => {
  const app = readFileSync(join(out, 'app.js'), 'utf8');
  // Marker strings of each SDK's own code (class names survive minification: keepNames).
  expect(app).not.toMatch(/ServiceBusReceiverImpl|BlockBlobClient/);
  expect(readFileSync(join(out, 'lazy', 'azure-service-bus.js'), 'utf8')).toMatch(
    /ServiceBusReceiverImpl/,
  );
  expect(readFileSync(join(out, 'lazy', 'azure-storage-blob.js'), 'utf8')).toMatch(
    /BlockBlobClient/,
  );
});

test('the entry turns on the compile cache in the temp directory and loads the bundle', () => {
  const entry = readFileSync(join(out, 'main.js'), 'utf8');
  expect([...requiredBy('main.js')].filter((id) => !isBuiltin(id))).toEqual(['./app.js']);
  expect(entry).toMatch(/join\(require\('node:os'\)\.tmpdir\(\), "[\w-]+"\)/);
  expect(entry).toMatch(/enableCompileCache\(dir\)/);
  // Never a recursive mkdir: Node 22's never returns for a path under /proc.
  expect(entry).not.toMatch(/recursive/);
});

// Azure mounts the package read-only: a temp directory where no compile cache can be written must
// not stop the app (the second case), nor make it print errors.
test.each([
  ['a writable temp directory', () => mkdtempSync(join(tmpdir(), 'compile-cache-'))],
  ['no usable temp directory', () => '/proc/no-such-dir'],
])('the bundle loads outside the repository and registers every function (%s)', (_, tmp) => {
  // Settings the app validates at start-up; the defaults come from the code.
  const settings: Record<string, string> = {
    ...contract.appSettings.defaults,
    ServiceBusConnection__fullyQualifiedNamespace: 'sb-test.servicebus.windows.net',
    ServiceBusConnection__credential: 'managedidentity',
    ServiceBusConnection__clientId: '11111111-1111-4111-8111-111111111111',
    AZURE_CLIENT_ID: '11111111-1111-4111-8111-111111111111',
    AUDIT_TABLE_ENDPOINT: 'https://sttest.table.core.windows.net',
    AUDIT_BLOB_ENDPOINT: 'https://sttest.blob.core.windows.net',
    PROTECTED_USERS: 'breakglass@contoso.com',
    DRY_RUN: 'true',
  };
  expect(contract.appSettings.requiredInAzure.filter((name) => !(name in settings))).toEqual([]);
  const result = spawnSync(process.execPath, ['-e', "require('./main.js')"], {
    cwd: out,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', TMPDIR: tmp(), ...settings },
  });
  expect(result.stderr).not.toMatch(/Error/);
  expect(result.status).toBe(0);
  const registered = [
    ...`${result.stdout}${result.stderr}`.matchAll(/Skipping call to register function "(\w+)"/g),
  ].map((m) => m[1]);
  expect(registered.sort()).toEqual(Object.values(contract.functions).sort());
});

test('the bundle runs a departure end to end through the function it registers', async () => {
  // What the benchmark's cold event does (bench/coldEvent.ts): the host's core API stood in,
  // the bundle's own @azure/functions building the InvocationContext, against the stand-ins. It
  // reaches every SDK on the hot path (identity, Graph, Table Storage, the immutable log's blob,
  // the outcome topic), so a package that breaks only when bundled shows here, not in Azure.
  const world = await startWorld();
  try {
    const [cold, warm] = [world.newUser(), world.newUser()];
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        const child = spawn(
          process.execPath,
          [join(ROOT, 'dist/bench/coldEvent.js'), join(out, 'main.js'), cold.upn, warm.upn],
          {
            cwd: out,
            env: { ...process.env, ...world.env, TMPDIR: mkdtempSync(join(tmpdir(), 'cc-')) },
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^cold-done\n\{"warmEventMs":[\d.]+\}\n$/);
    const revoked = world.graph
      .writes()
      .filter((w) => w.operation === 'revoke')
      .map((w) => w.userId);
    expect(revoked.sort()).toEqual([cold.id, warm.id].sort());
  } finally {
    await world.stop();
  }
}, 60_000);

test('--entry packages one module alone, bundled and started as the app (the bench floors)', () => {
  const floorOut = mkdtempSync(join(tmpdir(), 'floor-package-'));
  try {
    const packaged = spawnSync(
      process.execPath,
      ['dev/package-app.mjs', '--out', floorOut, '--entry', 'bench/floor/withAuditTable.ts'],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(packaged.stderr).toBe('');
    expect(readdirSync(floorOut).sort()).toEqual([
      'app.js',
      'host.json',
      'main.js',
      'package.json',
    ]);
    const app = readFileSync(join(floorOut, 'app.js'), 'utf8');
    // The required SDKs and nothing of ours.
    expect(app).toMatch(/ManagedIdentityCredential/);
    expect(app).toMatch(/TableClient/);
    expect(app).not.toMatch(/OffboardingService|GraphDirectory/);
    const started = spawnSync(process.execPath, ['-e', "require('./main.js')"], {
      cwd: floorOut,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', TMPDIR: mkdtempSync(join(tmpdir(), 'cc-')) },
    });
    expect(started.status).toBe(0);
    expect(started.stderr).toMatch(/Skipping call to register function "floor"/);
  } finally {
    rmSync(floorOut, { recursive: true, force: true });
  }
});
