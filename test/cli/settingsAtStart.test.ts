/**
 * Every `offboard` command checks the settings it needs before it acts: with one missing it exits
 * 78 naming the setting, and nothing reaches Graph. (A run by hand without the Service Bus setting
 * used to revoke, disable and reset first, then exit 75 when the outcome could not be published.)
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let cliEnv: Record<string, string>;
let departureFile: string;
let waveFile: string;
let user: { id: string; upn: string };

beforeAll(async () => {
  world = await startWorld();
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-test' };
  const dir = await mkdtemp(join(tmpdir(), 'offboard-settings-'));
  user = world.newUser();
  departureFile = join(dir, 'departure.json');
  await writeFile(
    departureFile,
    JSON.stringify(cloudEvent('employee.leaving', { user: user.upn, disableAccount: true })),
  );
  waveFile = join(dir, 'wave.csv');
  await writeFile(waveFile, `user\n${user.upn}\n`);
});
afterAll(async () => {
  await world.stop();
});

/** A setting left out (an empty value counts as unset), and the name the error must give. */
const SERVICE_BUS = ['ServiceBusConnection', 'ServiceBusConnection__fullyQualifiedNamespace'];
const AUDIT_STORE = ['AUDIT_TABLE_CONNECTION_STRING', 'AUDIT_TABLE_ENDPOINT'];
const PROTECTED = ['PROTECTED_USERS', 'PROTECTED_USERS'];

/** [command line, the settings it needs] */
const COMMANDS: [() => string[], string[][]][] = [
  [() => ['process', '--file', departureFile], [SERVICE_BUS, AUDIT_STORE, PROTECTED]],
  [
    () => ['reinstate', '--user', user.upn, '--reason', 'back', '--force'],
    [SERVICE_BUS, AUDIT_STORE, PROTECTED],
  ],
  [
    () => ['guardrail', 'release', '--kind', 'departures', '--reason', 'checked'],
    [SERVICE_BUS, AUDIT_STORE, PROTECTED],
  ],
  [
    () => ['guardrail', 'discard', '--kind', 'departures', '--reason', 'checked'],
    [SERVICE_BUS, AUDIT_STORE, PROTECTED],
  ],
  [() => ['dlq', 'list', '--queue', 'employee-leaving'], [SERVICE_BUS, AUDIT_STORE, PROTECTED]],
  [() => ['dlq', 'replay', '--queue', 'employee-leaving'], [SERVICE_BUS, AUDIT_STORE, PROTECTED]],
  [
    () => ['enqueue', '--type', 'mfa.enabled', '--csv', waveFile],
    [SERVICE_BUS, AUDIT_STORE, PROTECTED],
  ],
  [() => ['audit', '--user', user.upn], [AUDIT_STORE, PROTECTED]],
  [() => ['audit', 'verify'], [AUDIT_STORE, PROTECTED]],
  [() => ['report'], [AUDIT_STORE, PROTECTED]],
  [() => ['guardrail', 'status'], [AUDIT_STORE, PROTECTED]],
];

/** The command's words, before its options (the files and user exist once the world runs). */
const label = (args: () => string[]) =>
  args
    .toString()
    .match(/'[\w-]+'/g)
    ?.map((word) => word.slice(1, -1))
    .filter((word) => !word.startsWith('-'))
    .slice(0, 2)
    .join(' ') ?? '';

const CASES = COMMANDS.flatMap(([args, needs]) =>
  needs.map(([setting, named]) => [label(args), setting as string, named as string, args] as const),
);

describe('a missing setting stops every command before it acts', () => {
  beforeEach(() => world.graph.reset());

  test.each(CASES)('%s without %s: exit 78 naming %s', async (_line, setting, named, args) => {
    const run = await runCli(args(), { ...cliEnv, [setting]: '' });
    expect(run.stderr).toMatch(new RegExp(`^error InvalidConfiguration: Setting ${named} `, 'm'));
    expect(run.code).toBe(78);
    expect(world.graph.writes()).toEqual([]);
  });
});

test('with every setting, the same departure is carried out (the cases above can fail)', async () => {
  world.graph.reset();
  const run = await runCli(['process', '--file', departureFile], cliEnv);
  expect(run.code).toBe(0);
  expect(world.graph.writes().map((w) => w.userId)).toContain(user.id);
});
