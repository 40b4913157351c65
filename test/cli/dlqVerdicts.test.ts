/**
 * `offboard dlq list` and `dlq replay` say what the app will decide about each dead-lettered
 * message; a replay leaves the superseded ones in the dead-letter queue unless told otherwise.
 * The real SDKs, the runner and the CLI as a child process, against the stand-ins.
 */
import { BREAKGLASS_UPN } from '../../dev/graph-standin/seed';
import { latestRecordFor } from '../../shared/core/auditRecords';
import { runCli } from '../support/cli';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let pipeline: Pipeline;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  world = await startWorld();
  pipeline = startPipeline(world);
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-test' };
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
});

const deadLettered = (queue: string) => world.serviceBus.stats(queue).deadLettered;
const outcomeOf = async (eventId: string) =>
  (await latestRecordFor(world.runtime.audit, eventId))?.outcome;

interface Summary {
  eventId?: string;
  verdict: { kind: string; text: string; by?: { kind: string; eventId: string; at: string } };
}
interface Replay {
  replayed: Summary[];
  superseded: Summary[];
  failed: unknown[];
}

describe('a departure dead-lettered before any write, then cancelled by HR', () => {
  const queue = 'employee-leaving';
  let person: { id: string; upn: string };
  let departure: Record<string, unknown>;
  let cancellation: Record<string, unknown>;
  let expected: string;

  beforeAll(async () => {
    person = world.newUser();
    departure = cloudEvent('employee.leaving', { user: person.id });
    // Graph refuses the user read once: permanent, so every redelivery heads for the dead letters.
    world.graph.injectFault({
      operation: 'getUser',
      userKey: person.id,
      status: 403,
      code: 'Authorization_RequestDenied',
      message: 'Insufficient privileges to complete the operation.',
    });
    await pipeline.send(queue, departure);
    await waitFor('the departure in the dead-letter queue', () => deadLettered(queue) === 1);
    expect(await outcomeOf(departure.id as string)).toBe('failed');

    cancellation = cloudEvent('employee.leaving.cancelled', { user: person.id });
    await pipeline.send(queue, cancellation);
    await waitFor(
      'the cancellation to succeed',
      async () => (await outcomeOf(cancellation.id as string)) === 'succeeded',
    );
    expected = `superseded by a cancellation (/hr/workday, ${cancellation.id as string}) at ${new Date(cancellation.time as string).toISOString()}`;
    world.graph.reset();
  });

  it('dlq list shows it superseded by that cancellation', async () => {
    const json = await runCli(['dlq', 'list', '--queue', queue, '--json'], cliEnv);
    expect(json.stderr).toBe('');
    const [entry] = JSON.parse(json.stdout) as Summary[];
    expect(entry).toMatchObject({
      eventId: departure.id,
      verdict: {
        kind: 'superseded',
        by: { kind: 'cancel', eventId: cancellation.id },
        text: expected,
      },
    });
    const table = await runCli(['dlq', 'list', '--queue', queue], cliEnv);
    expect(table.stdout).toMatch(/^sequence .* when replayed$/m);
    expect(table.stdout).toContain(expected);
  });

  it('dlq replay --dry-run says it would leave it, and changes nothing', async () => {
    const json = await runCli(['dlq', 'replay', '--queue', queue, '--dry-run', '--json'], cliEnv);
    expect(JSON.parse(json.stdout)).toMatchObject({
      dryRun: true,
      replayed: [],
      superseded: [{ eventId: departure.id, verdict: { text: expected } }],
    });
    const text = await runCli(['dlq', 'replay', '--queue', queue, '--dry-run'], cliEnv);
    expect(text.stdout).toMatch(
      /^would replay 0, .*would leave 1 superseded in the dead-letter queue$/m,
    );
    expect(text.stdout).toContain(expected);
    expect(deadLettered(queue)).toBe(1);
  });

  it('dlq replay skips it, says so, and the account stays enabled', async () => {
    const run = await runCli(['dlq', 'replay', '--queue', queue, '--rate', '0'], cliEnv);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^replayed 0, skipped 0 .*left 1 superseded in the dead-letter queue$/m,
    );
    expect(run.stdout).toMatch(/^Superseded by a later HR intent, not replayed/m);
    expect(run.stdout).toContain(expected);
    expect(deadLettered(queue)).toBe(1);
    expect(world.serviceBus.stats(queue).active).toBe(0);
    expect(world.graph.getUser(person.id)?.accountEnabled).toBe(true);
    expect(world.graph.writes()).toHaveLength(0);
  });

  it('with --include-superseded it is replayed and audited superseded, with no Graph write', async () => {
    const run = await runCli(
      ['dlq', 'replay', '--queue', queue, '--rate', '0', '--include-superseded', '--json'],
      cliEnv,
    );
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as Replay;
    expect(result).toMatchObject({ superseded: [], failed: [] });
    expect(result.replayed).toMatchObject([{ eventId: departure.id, verdict: { text: expected } }]);
    expect(deadLettered(queue)).toBe(0);
    await waitFor(
      'the replayed departure to be audited superseded',
      async () => (await outcomeOf(departure.id as string)) === 'superseded',
    );
    const record = await latestRecordFor(world.runtime.audit, departure.id as string);
    expect(record?.supersededBy).toMatchObject({ kind: 'cancel', eventId: cancellation.id });
    expect(world.graph.writes()).toHaveLength(0);
    expect(world.graph.getUser(person.id)?.accountEnabled).toBe(true);
  });
});

describe('protected and invalid messages are offered as before, with their verdict', () => {
  const queue = 'mfa-enabled';
  const protectedEvent = cloudEvent('mfa.enabled', { user: BREAKGLASS_UPN });
  const invalidEvent = cloudEvent('mfa.enabled', { user: 'bad/user@contoso.com' });

  beforeAll(async () => {
    await pipeline.send(queue, protectedEvent);
    await pipeline.send(queue, invalidEvent);
    await waitFor('both in the dead-letter queue', () => deadLettered(queue) === 2, 30_000);
  });

  it('dlq list and a dry run name each verdict; both would be replayed', async () => {
    const list = await runCli(['dlq', 'list', '--queue', queue, '--json'], cliEnv);
    const entries = JSON.parse(list.stdout) as Summary[];
    const verdictOf = (id: unknown) => entries.find((e) => e.eventId === id)?.verdict.text;
    expect(verdictOf(protectedEvent.id)).toBe('protected account: will be refused');
    expect(verdictOf(invalidEvent.id)).toBe('invalid: data.user must not contain "/"');

    const dryRun = await runCli(['dlq', 'replay', '--queue', queue, '--dry-run', '--json'], cliEnv);
    const result = JSON.parse(dryRun.stdout) as Replay;
    expect(result.superseded).toEqual([]);
    expect(result.replayed.map((s) => s.verdict.kind).sort()).toEqual(['invalid', 'protected']);
  });
});
