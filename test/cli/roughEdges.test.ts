/**
 * What an operator runs into at 3 a.m., each through the built command as a child process: exit
 * codes as docs/cli.md says them (64 a bad option value, 75 only what may work later, 78 a
 * setting), errors that name what would have been right, and output that ends where it should.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../dev/azurite';
import { EventKinds } from '../../shared/core/events';
import { runCli } from '../support/cli';
import { startPipeline, type Pipeline } from '../support/runner';
import { recordsSettled } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let pipeline: Pipeline;
let cliEnv: Record<string, string>;
let dir: string;

/** Every setting the commands read, blank: a fresh shell with nothing exported. */
const NO_SETTINGS = Object.fromEntries(
  [
    'AUDIT_TABLE_ENDPOINT',
    'AUDIT_TABLE_CONNECTION_STRING',
    'ServiceBusConnection',
    'ServiceBusConnection__fullyQualifiedNamespace',
    'GRAPH_ENDPOINT',
  ].map((name) => [name, '']),
);

beforeAll(async () => {
  // A limit of one MFA event, so that the second is held and `guardrail status` lists it.
  world = await startWorld({ GUARDRAIL_MFA_PER_WINDOW: '1' });
  pipeline = startPipeline(world);
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-test' };
  dir = await mkdtemp(join(tmpdir(), 'offboard-edges-'));
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
});

describe('options and help', () => {
  it('prints its version with --version and exits 0', async () => {
    const run = await runCli(['--version'], {});
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('0.1.0\n');
  });

  it('prints the help of the subcommand named after `help`', async () => {
    const run = await runCli(['help', 'guardrail', 'status'], {});
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: offboard guardrail status \[options\]/);
    const group = await runCli(['help', 'guardrail'], {});
    expect(group.stdout).toMatch(/^Usage: offboard guardrail \[options\] \[command\]/);
  });

  it('exits 64 for an unknown --type, listing the known types, with nothing read or sent', async () => {
    const csv = join(dir, 'wave.csv');
    await writeFile(csv, 'user\nalice@contoso.com\n');
    const run = await runCli(['enqueue', '--type', 'foo', '--csv', csv], cliEnv);
    expect(run.code).toBe(64);
    expect(run.stderr).toContain(`It must be one of ${EventKinds.join(', ')}`);
    expect(run.stderr).not.toMatch(/bad row/);
    expect(world.serviceBus.stats('mfa-enabled').active).toBe(0);
  });

  it('exits 64 for a --queue that is not the app’s, naming the valid queues', async () => {
    for (const args of [
      ['dlq', 'list', '--queue', 'nope'],
      ['dlq', 'replay', '--queue', 'nope', '--dry-run'],
    ]) {
      const run = await runCli(args, cliEnv);
      expect(run.code).toBe(64);
      expect(run.stderr).toMatch(
        /error: --queue nope is not one of the app's queues: employee-leaving, mfa-enabled\./,
      );
      expect(run.stderr).not.toMatch(/MessagingEntityNotFound/);
    }
  });
});

describe('settings', () => {
  it('names the Service Bus setting first for dlq and enqueue (exit 78)', async () => {
    const csv = join(dir, 'one.csv');
    await writeFile(csv, 'user\nalice@contoso.com\n');
    for (const args of [
      ['dlq', 'list', '--queue', 'employee-leaving'],
      ['enqueue', '--type', 'mfa.enabled', '--csv', csv],
    ]) {
      const run = await runCli(args, NO_SETTINGS);
      expect(run.code).toBe(78);
      expect(run.stderr).toBe(
        'error InvalidConfiguration: Setting ServiceBusConnection__fullyQualifiedNamespace is required (or ServiceBusConnection for local development).\n',
      );
    }
  });

  it('says the sandbox is not running when its stand-ins refuse connections (exit 75)', async () => {
    const closed = await freePort();
    const gone = {
      ...cliEnv,
      AUDIT_TABLE_CONNECTION_STRING: world.env.AUDIT_TABLE_CONNECTION_STRING?.replace(
        /127\.0\.0\.1:\d+/g,
        `127.0.0.1:${closed}`,
      ),
    };
    const sandbox = await runCli(['audit', '--user', 'alice@contoso.com'], {
      ...gone,
      OFFBOARD_SANDBOX: '1',
    });
    expect(sandbox.code).toBe(75);
    expect(sandbox.stderr).toMatch(/^error AuditUnavailable: .*ECONNREFUSED/m);
    expect(sandbox.stderr).toMatch(/^hint: the local sandbox is not running .*`npm start`/m);
    // Against anything but the sandbox, no such guess.
    const elsewhere = await runCli(['audit', '--user', 'alice@contoso.com'], gone);
    expect(elsewhere.code).toBe(75);
    expect(elsewhere.stderr).not.toMatch(/hint/);
  });
});

describe('output', () => {
  it('shows the audited error message in the audit table, not only its code', async () => {
    const event = cloudEvent('employee.leaving', { user: 'x/y@contoso.com' });
    await pipeline.send('employee-leaving', event);
    await recordsSettled(
      world.runtime.audit,
      [event.id as string],
      (r) => r.errorCode !== undefined,
      'the invalid event audited',
    );
    const run = await runCli(['audit', '--event', event.id as string], cliEnv);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/failed\s+InvalidEvent: data\.user must not contain "\/"\n$/);
  });

  it('ends every table of `guardrail status` on its own line, the release hint after', async () => {
    const events = [1, 2].map(() => cloudEvent('mfa.enabled', { user: world.newUser().upn }));
    for (const event of events) await pipeline.send('mfa-enabled', event);
    await recordsSettled(
      world.runtime.audit,
      events.map((e) => e.id as string),
      (r) => r.outcome === 'succeeded' || r.outcome === 'held',
      'one event run and one held',
    );
    const run = await runCli(['guardrail', 'status'], cliEnv);
    expect(run.code).toBe(1); // held events need an operator
    const lines = run.stdout.split('\n');
    expect(run.stdout.endsWith('\n')).toBe(true);
    const hint = lines.findIndex((line) => line.startsWith('release: offboard guardrail release'));
    expect(hint).toBeGreaterThan(0);
    // The held table's last row is a line of its own, naming the held event.
    const heldRow = lines[hint - 1] ?? '';
    expect(events.map((e) => e.id as string)).toContain(heldRow.split(/\s+/)[0]);
  });
});
