import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALICE_UPN, BOB_UPN } from '../../dev/graph-standin/index';
import { GraphPermissions } from '../../shared/adapters/graphPermissions';
import { main } from '../../cli/offboard';
import { loadConfig } from '../../shared/app/config';
import { createRuntime } from '../../shared/app/runtime';
import { runCli } from '../support/cli';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { ALL_GRAPH_ROLES, cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let pipeline: Pipeline;
let cliEnv: Record<string, string>;
let dir: string;

const WAVE = Array.from({ length: 8 }, (_, i) => ({
  id: `0000000${i}-aaaa-4bbb-8ccc-00000000f00d`,
  userPrincipalName: `wave.user${i}@contoso.com`,
}));

beforeAll(async () => {
  // Short-lived tokens are not cached, so granting a role takes effect at once.
  world = await startWorld({}, { tokenLifetimeSeconds: 120 });
  for (const user of WAVE) world.graph.addUser(user);
  pipeline = startPipeline(world);
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-test' };
  dir = await mkdtemp(join(tmpdir(), 'offboard-ops-'));
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
});

const deadLettered = (queue: string) => world.serviceBus.stats(queue).deadLettered;
/** The audit record of an event these tests sent (one source each, so one record). */
const auditRecord = async (eventId: string) =>
  (await world.runtime.audit.findByEventId(eventId))[0];
const auditedOutcome = async (eventId: string) => (await auditRecord(eventId))?.outcome;

describe('dead letters: list and replay after fixing a 403', () => {
  const events = WAVE.map((user) => cloudEvent('mfa.enabled', { user: user.userPrincipalName }));

  it('dead-letters every event while the revoke permission is missing, with the reason in the audit', async () => {
    world.identity.setRoles(
      ALL_GRAPH_ROLES.filter((role) => role !== GraphPermissions.revokeSignInSessions),
    );
    for (const event of events) await pipeline.send('mfa-enabled', event);
    await waitFor(
      'all events in the dead-letter queue',
      () => deadLettered('mfa-enabled') === events.length,
      30_000,
    );
    expect(world.graph.writes()).toHaveLength(events.length); // one refused revoke each, never retried into Graph

    const list = await runCli(['dlq', 'list', '--queue', 'mfa-enabled', '--json'], cliEnv);
    expect(list.code).toBe(0);
    const entries = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
    expect(entries).toHaveLength(events.length);
    for (const entry of entries) {
      expect(entry).toMatchObject({
        reason: 'MaxDeliveryCountExceeded',
        deliveryCount: expect.any(Number) as unknown,
      });
      expect(entry.lastAuditedError).toMatch(/^Forbidden: .*User\.RevokeSessions\.All/);
      expect(events.map((e) => e.id)).toContain(entry.eventId);
      expect(entry.user).toMatch(/^wave\.user\d@contoso\.com$/);
    }
    const table = await runCli(['dlq', 'list', '--queue', 'mfa-enabled'], cliEnv);
    expect(table.stdout).toMatch(/^sequence\s+enqueued\s+event\s+user\s+deliveries\s+reason/m);
  });

  it('replays the batch once the permission is granted; every event then succeeds once', async () => {
    world.identity.setRoles(ALL_GRAPH_ROLES);
    const dryRun = await runCli(
      ['dlq', 'replay', '--queue', 'mfa-enabled', '--dry-run', '--json'],
      cliEnv,
    );
    expect(JSON.parse(dryRun.stdout)).toMatchObject({
      dryRun: true,
      replayed: expect.any(Array) as unknown,
    });
    expect(deadLettered('mfa-enabled')).toBe(events.length);

    world.graph.reset();
    // Three first, to see --max at work, then the rest.
    const firstThree = await runCli(
      ['dlq', 'replay', '--queue', 'mfa-enabled', '--max', '3', '--rate', '0'],
      cliEnv,
    );
    expect(firstThree.code).toBe(0);
    expect(firstThree.stdout).toMatch(
      /^replayed 3, skipped \d+ \(not matching, or over --max\), 0 failed/m,
    );
    expect(deadLettered('mfa-enabled')).toBe(events.length - 3);
    const replay = await runCli(
      [
        'dlq',
        'replay',
        '--queue',
        'mfa-enabled',
        '--reason',
        'MaxDeliveryCountExceeded',
        '--since',
        '2020-01-01T00:00:00Z',
        '--rate',
        '0',
      ],
      cliEnv,
    );
    expect(replay.stderr).toBe('');
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(new RegExp(`^replayed ${events.length - 3}, skipped 0 `, 'm'));
    expect(deadLettered('mfa-enabled')).toBe(0);

    for (const event of events) {
      await waitFor(
        `${event.id as string} to succeed`,
        async () => (await auditedOutcome(event.id as string)) === 'succeeded',
      );
    }
    expect(world.graph.writes()).toHaveLength(events.length);
    expect(pipeline.logs.some((l) => l.text.includes('Event processed'))).toBe(true);
  });

  it('does not act again on a replayed event that already succeeded', async () => {
    world.graph.reset();
    const [first] = events;
    // Put a copy of a finished event into the dead-letter queue, as a confused operator might.
    const sender = pipeline.client.createSender('mfa-enabled');
    await pipeline.runner.stop();
    await sender.sendMessages({
      body: first,
      messageId: 'manual-copy',
      contentType: 'application/json',
    });
    const receiver = pipeline.client.createReceiver('mfa-enabled');
    const [copy] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    await receiver.deadLetterMessage(copy!, {
      deadLetterReason: 'ManualTest',
      deadLetterErrorDescription: 'copy of a finished event',
    });
    await receiver.close();
    await sender.close();
    pipeline = startPipeline(world);

    const replay = await runCli(
      ['dlq', 'replay', '--queue', 'mfa-enabled', '--event', first!.id as string, '--json'],
      cliEnv,
    );
    expect(JSON.parse(replay.stdout)).toMatchObject({
      replayed: [{ eventId: first!.id, reason: 'ManualTest' }],
      failed: [],
    });
    await waitFor(
      'the duplicate to be counted',
      async () => ((await auditRecord(first!.id as string))?.duplicates ?? 0) >= 1,
    );
    expect(world.graph.writes()).toHaveLength(0);
  });
});

describe('offboard enqueue', () => {
  async function csv(text: string): Promise<string> {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.csv`);
    await writeFile(path, text);
    return path;
  }

  it('validates the whole file first and reports every bad row by line, sending nothing', async () => {
    const before = world.serviceBus.stats('mfa-enabled');
    const path = await csv(
      `user,ticket\n${ALICE_UPN},W1\nnot-a-user,W1\n${BOB_UPN},W1\n"bad/user@contoso.com",W1\n${ALICE_UPN},W1\n`,
    );
    const run = await runCli(['enqueue', '--type', 'mfa.enabled', '--csv', path], cliEnv);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/line 3: data\.user must be an object id/);
    expect(run.stderr).toMatch(/line 5: data\.user must not contain "\/"/);
    expect(run.stderr).toMatch(/line 6: the same user as line 2/);
    expect(run.stderr).toMatch(/3 problem\(s\) in the file; nothing was sent/);
    const after = world.serviceBus.stats('mfa-enabled');
    expect(after.completed + after.active).toBe(before.completed + before.active);
  });

  it('sends a wave, and sending the same file in the same wave again sends nothing twice', async () => {
    const wave = [world.newUser(), world.newUser(), world.newUser()];
    world.graph.reset();
    const path = await csv(`user,ticket\n${wave.map((u) => `${u.upn},W2`).join('\n')}\n`);
    const dry = await runCli(
      ['enqueue', '--type', 'mfa.enabled', '--csv', path, '--dry-run', '--wave', 'W2'],
      cliEnv,
    );
    expect(dry.stdout).toMatch(/would send 3 event\(s\) to mfa-enabled in wave W2/);

    const first = await runCli(
      [
        'enqueue',
        '--type',
        'mfa.enabled',
        '--csv',
        path,
        '--json',
        '--rate',
        '100',
        '--wave',
        'W2',
      ],
      cliEnv,
    );
    expect(first.code).toBe(0);
    const summary = JSON.parse(first.stdout) as { sent: number; eventIds: string[] };
    expect(summary.sent).toBe(3);
    for (const id of summary.eventIds) {
      await waitFor(`${id} to succeed`, async () => (await auditedOutcome(id)) === 'succeeded');
    }
    const dropped = world.serviceBus.stats('mfa-enabled').duplicatesDropped;
    const again = await runCli(
      ['enqueue', '--type', 'mfa.enabled', '--csv', path, '--json', '--wave', 'W2'],
      cliEnv,
    );
    expect(JSON.parse(again.stdout)).toMatchObject({ wave: 'W2', eventIds: summary.eventIds });
    await waitFor(
      'the repeats to be dropped',
      () => world.serviceBus.stats('mfa-enabled').duplicatesDropped === dropped + 3,
    );
    expect(world.graph.writes()).toHaveLength(3);
  });

  it('shows progress on a terminal and stays quiet in a pipe', async () => {
    const wave = [world.newUser(), world.newUser()];
    const path = await csv(`user\n${wave.map((u) => u.upn).join('\n')}\n`);
    let stdout = '';
    let stderr = '';
    const code = await main(
      ['enqueue', '--type', 'mfa.enabled', '--csv', path],
      {
        stdout: (text) => (stdout += text),
        stderr: (text) => (stderr += text),
        readStdin: () => Promise.resolve(''),
        interactive: true,
      },
      undefined,
      () => createRuntime(loadConfig(cliEnv)),
    );
    expect(code).toBe(0);
    expect(stderr).toContain('\rsent 2/2');
    expect(stdout).toMatch(/^sent 2 event\(s\) to mfa-enabled in wave \S+ /);

    const piped = await runCli(['enqueue', '--type', 'mfa.enabled', '--csv', path], cliEnv);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
  });
});
