/**
 * `offboard reinstate` as ops run it: the built command in a child process against the
 * stand-ins, with its exit codes (0 reinstated, 1 refused, 64 usage, 78 configuration).
 */
import { BREAKGLASS_UPN } from '../../dev/graph-standin/index';
import { runCli } from '../support/cli';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  world = await startWorld();
  cliEnv = { ...world.env, ...world.identity.envFor() };
});
afterAll(async () => {
  await world.stop();
});
beforeEach(() => world.graph.reset());

/** A user this app offboarded (disabled), and the departure's event id. */
async function departedUser() {
  const user = world.newUser();
  const departure = cloudEvent('employee.leaving', { user: user.upn, resetPassword: true });
  const result = await world.runtime.offboarding.process({
    body: departure,
    route: 'command',
    messageId: `test-${departure.id as string}`,
  });
  expect(result.record.outcome).toBe('succeeded');
  world.graph.reset();
  return { ...user, departureId: departure.id as string };
}

describe('offboard reinstate', () => {
  it('re-enables an account this app disabled, exits 0, and prints what the helpdesk does next', async () => {
    const user = await departedUser();

    const run = await runCli(
      ['reinstate', '--user', user.upn, '--reason', 'rehired', '--event', user.departureId],
      cliEnv,
    );

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/outcome\s+succeeded/);
    expect(run.stdout).toMatch(/action\s+enableAccount: succeeded/);
    expect(run.stdout).toContain(`Names departure ${user.departureId}`);
    expect(run.stdout).toMatch(/issue a Temporary Access Pass or a new password/);
    expect(world.graph.getUser(user.id)?.accountEnabled).toBe(true);
    expect(world.graph.writes().map((w) => [w.method, w.body])).toEqual([
      ['PATCH', { accountEnabled: true }],
    ]);
  });

  it('prints the record as JSON with --json, with its source and reason', async () => {
    const user = await departedUser();
    const run = await runCli(
      ['reinstate', '--user', user.id, '--reason', 'withdrew resignation', '--json'],
      cliEnv,
    );
    expect(run.code).toBe(0);
    const record = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(record).toMatchObject({
      source: 'offboard-cli/reinstate',
      eventType: 'employee.reinstated',
      reason: 'withdrew resignation',
      outcome: 'succeeded',
      objectId: user.id,
    });
    expect(record.eventId).toMatch(/^reinstate-[0-9a-f-]{36}$/);
  });

  it('exits 1 for an account this app did not disable, and 0 with --force', async () => {
    const user = world.newUser();
    world.graph.addUser({ id: user.id, userPrincipalName: user.upn, accountEnabled: false });
    world.graph.reset();

    const refused = await runCli(['reinstate', '--user', user.upn, '--reason', 'x'], cliEnv);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error NotDisabledByThisApp: .*--force/m);
    expect(world.graph.writes()).toHaveLength(0);

    const forced = await runCli(
      ['reinstate', '--user', user.upn, '--reason', 'rehired, ticket HR-7', '--force'],
      { ...cliEnv, OFFBOARD_OPERATOR: 'ops.alice' },
    );
    expect(forced.code).toBe(0);
    // The audit names who forced it, when and why.
    expect(forced.stdout).toMatch(
      /Forced by ops\.alice \(--force\) at \S+: rehired, ticket HR-7\./,
    );
    expect(world.graph.getUser(user.id)?.accountEnabled).toBe(true);
  });

  it('exits 1 for a protected account, even with --force', async () => {
    const run = await runCli(
      ['reinstate', '--user', BREAKGLASS_UPN, '--reason', 'x', '--force'],
      cliEnv,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error ProtectedAccount: /m);
    expect(world.graph.writes()).toHaveLength(0);
  });

  it('exits 64 naming the option for a bad or missing --user or --reason, before anything runs', async () => {
    const badUser = await runCli(['reinstate', '--user', 'alice', '--reason', 'x'], cliEnv);
    expect(badUser.code).toBe(64);
    expect(badUser.stderr).toMatch(/--user must be an object id \(GUID\) or a user principal name/);
    expect(badUser.stderr).toMatch(/Usage: offboard reinstate/);

    const noReason = await runCli(['reinstate', '--user', 'alice@contoso.com'], cliEnv);
    expect(noReason.code).toBe(64);
    expect(noReason.stderr).toMatch(/--reason/);

    const emptyReason = await runCli(
      ['reinstate', '--user', 'alice@contoso.com', '--reason', ' '],
      cliEnv,
    );
    expect(emptyReason.code).toBe(64);
    expect(world.graph.requests).toHaveLength(0);
  });

  it('exits 78 naming a missing setting', async () => {
    const run = await runCli(['reinstate', '--user', 'alice@contoso.com', '--reason', 'x'], {
      ...cliEnv,
      AUDIT_TABLE_CONNECTION_STRING: '',
      AUDIT_TABLE_ENDPOINT: '',
    });
    expect(run.code).toBe(78);
    expect(run.stderr).toMatch(/Setting AUDIT_TABLE_ENDPOINT is required/);
  });

  it('--help shows the options and what a reinstatement does not restore, exit 0', async () => {
    const run = await runCli(['reinstate', '--help'], {});
    expect(run.code).toBe(0);
    for (const option of ['--user', '--reason', '--event', '--force', '--json'])
      expect(run.stdout).toContain(option);
    expect(run.stdout).toMatch(/Temporary Access Pass/);
    expect(run.stdout).toMatch(/employee.leaving.cancelled/);
  });
});
