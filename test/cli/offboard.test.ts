import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALICE_ID, BREAKGLASS_UPN, GUEST_UPN } from '../../dev/graph-standin/index';
import { runCli } from '../support/cli';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let cliEnv: Record<string, string>;
let dir: string;

/** A fresh user per test (see World.newUser). */
let bob: { id: string; upn: string };
beforeEach(() => {
  bob = world.newUser();
});

beforeAll(async () => {
  world = await startWorld();
  cliEnv = { ...world.env, ...world.identity.envFor() };
  dir = await mkdtemp(join(tmpdir(), 'offboard-cli-'));
});
afterAll(async () => {
  await world.stop();
});
beforeEach(() => world.graph.reset());

async function eventFile(event: unknown): Promise<string> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  await writeFile(path, JSON.stringify(event));
  return path;
}

describe('offboard process', () => {
  it('runs an event from a file through the same use case and exits 0', async () => {
    const event = cloudEvent('mfa.enabled', { user: bob.upn });
    const run = await runCli(['process', '--file', await eventFile(event)], cliEnv);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/outcome\s+succeeded/);
    expect(run.stdout).toMatch(/verified\s+yes/);
    expect(world.graph.writes()).toHaveLength(1);
  });

  it('reads the event from stdin and prints JSON with --json', async () => {
    const event = cloudEvent('employee.leaving', { user: GUEST_UPN, disableAccount: true });
    const run = await runCli(['process', '--json'], cliEnv, JSON.stringify(event));
    expect(run.code).toBe(0);
    const record = JSON.parse(run.stdout) as { eventId: string; outcome: string; notes: string[] };
    expect(record).toMatchObject({ eventId: event.id, outcome: 'succeeded' });
    expect(record.notes.join(' ')).toMatch(/home tenant/);
  });

  it('exits 0 for an already-processed duplicate and writes nothing', async () => {
    const path = await eventFile(cloudEvent('mfa.enabled', { user: bob.upn }));
    expect((await runCli(['process', '--file', path], cliEnv)).code).toBe(0);
    world.graph.reset();
    const again = await runCli(['process', '--file', path], cliEnv);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already processed/);
    expect(world.graph.writes()).toHaveLength(0);
  });

  it('schedules a departure with a future leave date on the queue, and exits', async () => {
    const effectiveAt = new Date(Date.now() + 86_400_000).toISOString();
    const event = cloudEvent('employee.leaving', { user: bob.upn, effectiveAt });
    const scheduled = world.serviceBus.stats('employee-leaving').scheduled;
    const run = await runCli(['process'], cliEnv, JSON.stringify(event));
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/outcome\s+scheduled/);
    expect(world.serviceBus.stats('employee-leaving').scheduled).toBe(scheduled + 1);
    expect(world.graph.writes()).toHaveLength(0);
  });

  it('exits 0 in dry run', async () => {
    const run = await runCli(
      ['process'],
      { ...cliEnv, DRY_RUN: 'true' },
      JSON.stringify(cloudEvent('employee.leaving', { user: ALICE_ID })),
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/outcome\s+dry-run/);
    expect(world.graph.writes()).toHaveLength(0);
  });

  it('exits 1 with the code and an actionable message for a refused account', async () => {
    const run = await runCli(
      ['process'],
      cliEnv,
      JSON.stringify(cloudEvent('employee.leaving', { user: BREAKGLASS_UPN })),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error ProtectedAccount: .*PROTECTED_USERS/m);
  });

  it('exits 1 for invalid input, naming the field', async () => {
    const run = await runCli(
      ['process'],
      cliEnv,
      JSON.stringify(cloudEvent('employee.leaving', { user: 'alice' })),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /error InvalidEvent: data.user must be an object id \(GUID\) or a user principal name/,
    );
    expect(world.graph.requests).toHaveLength(0);
  });

  it('exits 75 when the failure is retryable', async () => {
    world.graph.injectFault({ operation: 'revoke', status: 503 });
    const run = await runCli(
      ['process'],
      cliEnv,
      JSON.stringify(cloudEvent('mfa.enabled', { user: bob.upn })),
    );
    expect(run.code).toBe(75);
    expect(run.stderr).toMatch(/^error GraphUnavailable: revokeSignInSessions: Graph 503/m);
  });

  it('exits 78 naming a missing setting', async () => {
    const run = await runCli(
      ['process'],
      { ...cliEnv, AUDIT_TABLE_CONNECTION_STRING: '', AUDIT_TABLE_ENDPOINT: '' },
      '{}',
    );
    expect(run.code).toBe(78);
    expect(run.stderr).toMatch(/Setting AUDIT_TABLE_ENDPOINT is required/);
  });

  it('exits 64 on a usage error', async () => {
    const run = await runCli(['process', '--fiel', 'x'], cliEnv);
    expect(run.code).toBe(64);
    expect(run.stderr).toMatch(/Usage:/);
  });
});

describe('offboard audit', () => {
  it('lists a user’s records as a table, matching by UPN or object id', async () => {
    const event = cloudEvent(
      'employee.leaving',
      { user: ALICE_ID, disableAccount: false },
      'evt-audit-table',
    );
    expect((await runCli(['process'], cliEnv, JSON.stringify(event))).code).toBe(0);
    const byUpn = await runCli(['audit', '--user', 'ALICE@contoso.com'], cliEnv);
    expect(byUpn.code).toBe(0);
    expect(byUpn.stdout).toMatch(/^time\s+event\s+type\s+user\s+outcome/m);
    expect(byUpn.stdout).toMatch(
      /evt-audit-table\s+employee\.leaving\s+a11ce000-0000-4000-8000-000000000001\s+succeeded/,
    );
    const byId = await runCli(['audit', '--user', ALICE_ID], cliEnv);
    expect(byId.stdout).toContain('evt-audit-table');
  });

  it('prints only a JSON array with --json, with the audit field names', async () => {
    const run = await runCli(['audit', '--event', 'evt-audit-table', '--json'], cliEnv);
    expect(run.code).toBe(0);
    const records = JSON.parse(run.stdout) as Array<Record<string, unknown>>;
    expect(records).toHaveLength(1);
    expect(Object.keys(records[0] ?? {})).toEqual(
      expect.arrayContaining([
        'eventId',
        'eventType',
        'source',
        'user',
        'objectId',
        'requestedActions',
        'actions',
        'verification',
        'graphRequestIds',
        'outcome',
        'attempts',
        'firstAttemptAt',
        'lastAttemptAt',
      ]),
    );
    const empty = await runCli(['audit', '--event', 'no-such-event', '--json'], cliEnv);
    expect(JSON.parse(empty.stdout)).toEqual([]);
  });

  it('needs exactly one of --user or --event', async () => {
    expect((await runCli(['audit'], cliEnv)).code).toBe(64);
    expect((await runCli(['audit', '--user', 'a@b.com', '--event', 'x'], cliEnv)).code).toBe(64);
  });
});
