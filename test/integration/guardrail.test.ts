/**
 * The blast-radius guardrail end to end: a mis-configured feed of 200 departures through the
 * function handlers (Service Bus stand-in, local runner, real Graph client against the Graph
 * stand-in, audit and guardrail record in Azurite), then an operator's `offboard guardrail`
 * status, release and discard through the CLI as ops run it.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestRecordFor } from '../../shared/core/auditRecords';
import type { AuditRecord } from '../../shared/core/ports';
import { runCli } from '../support/cli';
import { startPipeline, type Pipeline } from '../support/runner';
import { recordsSettled, waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

const LIMIT = 50;
const FEED = 200;
const MFA_LIMIT = 3;

let world: World;
let pipeline: Pipeline;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  world = await startWorld({
    GUARDRAIL_DEPARTURES_PER_WINDOW: String(LIMIT),
    GUARDRAIL_MFA_PER_WINDOW: String(MFA_LIMIT),
  });
  pipeline = startPipeline(world);
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-oncall' };
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
});

const record = (id: string) => latestRecordFor(world.runtime.audit, id);

async function outcomesOf(ids: string[]): Promise<AuditRecord[]> {
  return Promise.all(
    ids.map(async (id) => {
      const r = await record(id);
      if (r === undefined) throw new Error(`no record for ${id}`);
      return r;
    }),
  );
}

const settledAll = (ids: string[], done: (r: AuditRecord) => boolean, what: string) =>
  recordsSettled(world.runtime.audit, ids, done, what);

const writesTo = (userId: string) =>
  world.graph.writes().filter((w) => w.decodedPath.includes(userId));

describe('a feed of 200 departures against a limit of 50', () => {
  const feed: Array<{ id: string; userId: string; upn: string }> = [];

  beforeAll(async () => {
    world.graph.reset();
    for (let i = 0; i < FEED; i++) {
      const user = world.newUser();
      const event = cloudEvent('employee.leaving', { user: user.upn, ticket: `HR-${i}` });
      feed.push({ id: event.id as string, userId: user.id, upn: user.upn });
      await pipeline.send('employee-leaving', event);
    }
    await settledAll(
      feed.map((f) => f.id),
      (r) => r.outcome === 'succeeded' || r.outcome === 'held',
      'every departure of the feed to be executed or held',
    );
  }, 120_000);

  it('executes 50, holds 150 with zero Graph writes for them, and alerts once', async () => {
    const records = await outcomesOf(feed.map((f) => f.id));
    const succeeded = records.filter((r) => r.outcome === 'succeeded');
    const held = records.filter((r) => r.outcome === 'held');
    expect(succeeded).toHaveLength(LIMIT);
    expect(held).toHaveLength(FEED - LIMIT);

    for (const r of held) {
      const user = feed.find((f) => f.id === r.eventId);
      expect(writesTo(user?.userId ?? 'missing')).toEqual([]);
      expect(world.graph.getUser(user?.userId ?? '')?.accountEnabled).toBe(true);
      expect(r.guardrail?.heldReason).toMatch(/guardrail for departures tripped/);
      expect(r.guardrail?.heldEvent).toBeDefined();
      expect(r.actions.every((a) => a.status === 'not-attempted')).toBe(true);
    }
    for (const r of succeeded) expect(r.guardrail?.admittedAt).toBeDefined();
    const alerts = JSON.stringify(pipeline.logs).match(/GuardrailTripped/g) ?? [];
    expect(alerts).toHaveLength(1);
  });

  it('a resend of a held event stays held: no Graph call', async () => {
    const heldOne = (await outcomesOf(feed.map((f) => f.id))).find((r) => r.outcome === 'held');
    const user = feed.find((f) => f.id === heldOne?.eventId);
    if (heldOne === undefined || user === undefined) throw new Error('no held event');
    await pipeline.send(
      'employee-leaving',
      JSON.parse(heldOne.guardrail?.heldEvent ?? '{}') as Record<string, unknown>,
    );
    await waitFor('the resend to be counted as a duplicate', async () => {
      const r = await record(heldOne.eventId);
      return (r?.duplicates ?? 0) >= 1 ? r : undefined;
    });
    expect((await record(heldOne.eventId))?.outcome).toBe('held');
    expect(writesTo(user.userId)).toEqual([]);
  });

  it('status shows the trip and the held events; release runs them paced, audited with who and why', async () => {
    const status = await runCli(['guardrail', 'status', '--json'], cliEnv);
    expect(status.code).toBe(1);
    const routes = (JSON.parse(status.stdout) as { routes: Array<Record<string, unknown>> }).routes;
    const departures = routes.find((r) => r.route === 'employeeLeaving') as {
      trip?: unknown;
      held: unknown[];
      trips: number;
    };
    expect(departures.trip).toBeDefined();
    expect(departures.held).toHaveLength(FEED - LIMIT);
    expect(departures.trips).toBe(1);

    const release = await runCli(
      [
        'guardrail',
        'release',
        '--kind',
        'departures',
        '--reason',
        'HR confirmed the first 30',
        '--max',
        '30',
        '--json',
      ],
      cliEnv,
    );
    expect(release.stderr).toBe('');
    expect(release.code).toBe(0);
    const released = JSON.parse(release.stdout) as {
      approvalId: string;
      sent: Array<{ eventId: string; decision: string }>;
      stillHeld: number;
    };
    expect(released.sent).toHaveLength(30);
    expect(released.sent.every((r) => r.decision === 'release')).toBe(true);
    expect(released.stillHeld).toBe(FEED - LIMIT - 30);

    const ids = released.sent.map((r) => r.eventId);
    const ran = await settledAll(
      ids,
      (r) => r.outcome === 'succeeded',
      'the released events to run',
    );
    for (const r of ran) {
      expect(r.guardrail?.release).toMatchObject({
        by: 'ops-oncall',
        reason: 'HR confirmed the first 30',
        approvalId: released.approvalId,
      });
      expect(r.guardrail?.approval).toBe(released.approvalId);
      const user = feed.find((f) => f.id === r.eventId);
      expect(world.graph.getUser(user?.userId ?? '')?.accountEnabled).toBe(false);
    }
    // Still tripped: 120 remain held (undecided) and no new departure runs past the trip.
    const after = JSON.parse((await runCli(['guardrail', 'status', '--json'], cliEnv)).stdout) as {
      routes: Array<{ route: string; trip?: unknown; held: unknown[] }>;
    };
    const stillHeld = after.routes.find((r) => r.route === 'employeeLeaving');
    expect(stillHeld?.trip).toBeDefined();
    expect(stillHeld?.held).toHaveLength(FEED - LIMIT - 30);
  }, 90_000);

  it('discard audits every remaining held event, never runs them, and clears the trip but not the window', async () => {
    const heldBefore = (await outcomesOf(feed.map((f) => f.id))).filter(
      (r) => r.outcome === 'held',
    );
    world.graph.reset();
    const discard = await runCli(
      [
        'guardrail',
        'discard',
        '--kind',
        'departures',
        '--reason',
        'feed mapped every employee to leaving',
        '--json',
      ],
      cliEnv,
    );
    expect(discard.code).toBe(0);
    const discarded = JSON.parse(discard.stdout) as { sent: Array<{ eventId: string }> };
    expect(discarded.sent.map((d) => d.eventId).sort()).toEqual(
      heldBefore.map((r) => r.eventId).sort(),
    );
    // The app applies the decision when each event comes back through its queue.
    const records = await settledAll(
      heldBefore.map((h) => h.eventId),
      (r) => r.outcome === 'discarded',
      'the discarded events to be audited as discarded',
    );
    for (const r of records) {
      expect(r.guardrail?.discard).toMatchObject({
        by: 'ops-oncall',
        reason: 'feed mapped every employee to leaving',
      });
    }
    expect(world.graph.writes()).toEqual([]);

    const status = JSON.parse((await runCli(['guardrail', 'status', '--json'], cliEnv)).stdout) as {
      routes: Array<{
        route: string;
        trip?: unknown;
        held: unknown[];
        decisions: Array<{ action: string }>;
      }>;
    };
    const departures = status.routes.find((r) => r.route === 'employeeLeaving');
    expect(departures?.trip).toBeUndefined();
    expect(departures?.held).toEqual([]);
    expect(departures?.decisions.map((d) => d.action)).toEqual(['release', 'discard']);

    // The window still counts what ran before the trip: the feed's next departure is held.
    const user = world.newUser();
    const next = cloudEvent('employee.leaving', { user: user.upn });
    await pipeline.send('employee-leaving', next);
    const [done] = await settledAll(
      [next.id as string],
      (r) => r.outcome !== 'in-progress',
      'the next departure',
    );
    expect(done?.outcome).toBe('held');
    expect(world.graph.getUser(user.id)?.accountEnabled).toBe(true);
  }, 90_000);
});

describe('a wave sent with offboard enqueue is its own approval, its size the ceiling', () => {
  it('runs all 8 wave events past an MFA limit of 3; events outside the wave still meet the limit', async () => {
    const waveUsers = Array.from({ length: 8 }, () => world.newUser());
    const dir = await mkdtemp(join(tmpdir(), 'guardrail-wave-'));
    const path = join(dir, 'wave.csv');
    await writeFile(path, ['user', ...waveUsers.map((u) => u.upn)].join('\n') + '\n');
    const sent = await runCli(
      ['enqueue', '--type', 'mfa.enabled', '--csv', path, '--rate', '0', '--json'],
      cliEnv,
    );
    expect(sent.code).toBe(0);
    const wave = JSON.parse(sent.stdout) as { wave: string; eventIds: string[] };
    const done = await settledAll(wave.eventIds, (r) => r.outcome !== 'in-progress', 'the wave');
    expect(done.map((r) => r.outcome)).toEqual(Array(8).fill('succeeded'));
    for (const r of done) expect(r.guardrail?.approval).toBe(wave.wave);

    const status = JSON.parse((await runCli(['guardrail', 'status', '--json'], cliEnv)).stdout) as {
      routes: Array<{
        route: string;
        executedInWindow: number;
        approvals: Array<{ wave: string; size: number; used: number; by: string }>;
      }>;
    };
    const mfa = status.routes.find((r) => r.route === 'mfaEnabled');
    expect(mfa?.approvals).toEqual([
      expect.objectContaining({ wave: wave.wave, size: 8, used: 8, by: 'ops-oncall' }),
    ]);
    expect(mfa?.executedInWindow).toBe(0);

    // The same wave id on events the operator did not send gains nothing past its size.
    const outside = Array.from({ length: MFA_LIMIT + 1 }, () => world.newUser());
    const events = outside.map((u) => cloudEvent('mfa.enabled', { user: u.upn }));
    for (const e of events)
      await pipeline.send('mfa-enabled', e, undefined, { offboardingWave: wave.wave });
    const after = await settledAll(
      events.map((e) => e.id as string),
      (r) => r.outcome === 'succeeded' || r.outcome === 'held',
      'the events outside the wave',
    );
    expect(after.filter((r) => r.outcome === 'succeeded')).toHaveLength(MFA_LIMIT);
    expect(after.filter((r) => r.outcome === 'held')).toHaveLength(1);
  }, 90_000);
});

describe('guardrail commands refuse what cannot mean anything', () => {
  it('release without --reason or with an unknown --kind is a usage error', async () => {
    const noReason = await runCli(['guardrail', 'release', '--kind', 'departures'], cliEnv);
    expect(noReason.code).toBe(64);
    const badKind = await runCli(
      ['guardrail', 'discard', '--kind', 'everyone', '--reason', 'x'],
      cliEnv,
    );
    expect(badKind.code).toBe(64);
  });
});
