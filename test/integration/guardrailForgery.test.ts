/**
 * The guardrail tried as an attacker with send rights on the HR queue, through the function
 * handlers (Service Bus stand-in, local runner, Graph stand-in, Azurite) and the CLI as ops run
 * it: a forged wave id rides no approval, a discard does not reopen the gate for the same feed,
 * and an event held while a decision runs keeps the trip.
 */
import { ServiceBusClient } from '@azure/service-bus';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestRecordFor } from '../../shared/core/auditRecords';
import type { GuardrailStore } from '../../shared/core/guardrail';
import { decideHeld } from '../../shared/core/guardrailOps';
import type { AuditRecord } from '../../shared/core/ports';
import { runCli } from '../support/cli';
import { startPipeline, type Pipeline } from '../support/runner';
import { recordsSettled, waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let pipeline: Pipeline | undefined;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  world = await startWorld({
    GUARDRAIL_DEPARTURES_PER_WINDOW: '1',
    GUARDRAIL_MFA_PER_WINDOW: '1',
    GUARDRAIL_REINSTATEMENTS_PER_WINDOW: '1',
  });
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-oncall' };
});
afterAll(async () => {
  await pipeline?.stop();
  await world.stop();
});

const settled = (ids: string[], what: string) =>
  recordsSettled(
    world.runtime.audit,
    ids,
    (r) => r.outcome !== 'in-progress' && r.outcome !== 'scheduled',
    what,
  );

const enabled = (userId: string) => world.graph.getUser(userId)?.accountEnabled;

interface Status {
  routes: Array<{
    route: string;
    trip?: { held?: number };
    executedInWindow: number;
    held: unknown[];
    trips: number;
  }>;
}

async function departuresStatus() {
  const status = JSON.parse(
    (await runCli(['guardrail', 'status', '--json'], cliEnv)).stdout,
  ) as Status;
  const departures = status.routes.find((r) => r.route === 'employeeLeaving');
  if (departures === undefined) throw new Error('no departures in status');
  return departures;
}

async function sendDeparture(): Promise<{ id: string; userId: string }> {
  const user = world.newUser();
  const event = cloudEvent('employee.leaving', { user: user.upn });
  await pipeline?.send('employee-leaving', event);
  return { id: event.id as string, userId: user.id };
}

describe('a forged wave id (departures limit 1, wave CHG-1001 of 5 users)', () => {
  const waveUsers: Array<{ id: string; upn: string }> = [];
  const forged: Array<{ id: string; userId: string }> = [];
  let wave: { wave: string; eventIds: string[] };

  beforeAll(async () => {
    // The HR-queue sender's 5 departures carrying the operator's wave id reach the queue first;
    // the operator's wave follows; then the functions start.
    const client = new ServiceBusClient(world.serviceBus.connectionString);
    const sender = client.createSender(world.runtime.config.queues.employeeLeaving);
    for (let i = 0; i < 5; i++) {
      const user = world.newUser();
      const event = cloudEvent('employee.leaving', { user: user.upn });
      forged.push({ id: event.id as string, userId: user.id });
      await sender.sendMessages({
        body: event,
        contentType: 'application/json',
        applicationProperties: { offboardingWave: 'CHG-1001' },
      });
    }
    await sender.close();
    await client.close();

    for (let i = 0; i < 5; i++) waveUsers.push(world.newUser());
    const dir = await mkdtemp(join(tmpdir(), 'guardrail-forgery-'));
    const path = join(dir, 'wave.csv');
    await writeFile(path, ['user', ...waveUsers.map((u) => u.upn)].join('\n') + '\n');
    const sent = await runCli(
      [
        'enqueue',
        '--type',
        'employee.leaving',
        '--csv',
        path,
        '--wave',
        'CHG-1001',
        '--confirm-size',
        '5',
        '--rate',
        '0',
        '--json',
      ],
      cliEnv,
    );
    expect(sent.stderr).toBe('');
    expect(sent.code).toBe(0);
    wave = JSON.parse(sent.stdout) as typeof wave;
    pipeline = startPipeline(world);
    await settled([...forged.map((f) => f.id), ...wave.eventIds], 'the forged and the wave events');
  }, 120_000);

  it('runs every event of the operator’s wave under its approval', async () => {
    const records = await settled(wave.eventIds, 'the wave');
    expect(records.map((r) => r.outcome)).toEqual(Array(5).fill('succeeded'));
    for (const r of records) expect(r.guardrail?.approval).toBe('CHG-1001');
    for (const u of waveUsers) expect(world.graph.getUser(u.id)?.accountEnabled).toBe(false);
  });

  it('counts the forged ones like any departure: one runs (the limit), four are held', async () => {
    const records = await settled(
      forged.map((f) => f.id),
      'the forged events',
    );
    expect(records.filter((r) => r.outcome === 'succeeded')).toHaveLength(1);
    const held = records.filter((r) => r.outcome === 'held');
    expect(held).toHaveLength(4);
    for (const r of records) expect(r.guardrail?.approval).toBeUndefined();
    for (const r of held) {
      const user = forged.find((f) => f.id === r.eventId);
      expect(enabled(user?.userId ?? '')).toBe(true);
    }
  });

  it('a discard ends the held events, not the protection: the same feed’s next departure is held', async () => {
    const discard = await runCli(
      ['guardrail', 'discard', '--kind', 'departures', '--reason', 'forged wave', '--json'],
      cliEnv,
    );
    expect(discard.code).toBe(0);
    const result = JSON.parse(discard.stdout) as { sent: unknown[]; tripCleared: boolean };
    expect(result.sent).toHaveLength(4);
    expect(result.tripCleared).toBe(true);
    await recordsSettled(
      world.runtime.audit,
      forged.map((f) => f.id),
      (r) => r.outcome === 'succeeded' || r.outcome === 'discarded',
      'the discards to be applied',
    );
    const after = await departuresStatus();
    expect(after.trip).toBeUndefined();
    // What ran before the trip still counts.
    expect(after.executedInWindow).toBe(1);

    const next = await sendDeparture();
    const [record] = await settled([next.id], 'the next departure');
    expect(record?.outcome).toBe('held');
    expect(enabled(next.userId)).toBe(true);
    expect((await departuresStatus()).trips).toBe(2);
  }, 90_000);

  it('reopen refuses while an event waits for a decision, then opens the gate on purpose', async () => {
    const refused = await runCli(
      ['guardrail', 'reopen', '--kind', 'departures', '--reason', 'feed fixed'],
      cliEnv,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/1 held departures event\(s\) have no decision/);

    const discard = await runCli(
      ['guardrail', 'discard', '--kind', 'departures', '--reason', 'same feed'],
      cliEnv,
    );
    expect(discard.code).toBe(0);
    const reopen = await runCli(
      ['guardrail', 'reopen', '--kind', 'departures', '--reason', 'HR fixed the feed', '--json'],
      cliEnv,
    );
    expect(reopen.code).toBe(0);
    const status = await departuresStatus();
    expect(status.trip).toBeUndefined();
    expect(status.executedInWindow).toBe(0);

    const next = await sendDeparture();
    const [record] = await settled([next.id], 'a departure after the reopen');
    expect(record?.outcome).toBe('succeeded');
  }, 90_000);
  it('reinstatements have their own limit: a departures trip never blocks a rehire', async () => {
    // The window holds the departure that ran after the reopen: the next one trips it.
    const tripping = await sendDeparture();
    expect((await settled([tripping.id], 'the tripping departure'))[0]?.outcome).toBe('held');
    expect((await departuresStatus()).trip).toBeDefined();

    const [first, second] = waveUsers.map((u) =>
      cloudEvent('employee.reinstated', { user: u.upn, reason: 'rehired' }),
    );
    if (first === undefined || second === undefined) throw new Error('no wave users');
    await pipeline?.send('employee-leaving', first);
    const [rehired] = await settled([first.id as string], 'the first reinstatement');
    expect(rehired?.outcome).toBe('succeeded');
    expect(enabled(waveUsers[0]?.id ?? '')).toBe(true);

    // Limit 1 for reinstatements: a runaway feed of them is held too.
    await pipeline?.send('employee-leaving', second);
    const [held] = await settled([second.id as string], 'the second reinstatement');
    expect(held?.outcome).toBe('held');
    expect(held?.guardrail?.heldReason).toMatch(/guardrail for reinstatements/);
    expect(enabled(waveUsers[1]?.id ?? '')).toBe(false);
    const status = JSON.parse(
      (await runCli(['guardrail', 'status', '--json'], cliEnv)).stdout,
    ) as Status;
    expect(status.routes.find((r) => r.route === 'employeeReinstated')?.held).toHaveLength(1);
  }, 90_000);
});

describe('an event held while a decision runs', () => {
  it('keeps the trip: the clear is decided in the same conditional write', async () => {
    if (pipeline === undefined) pipeline = startPipeline(world);
    const active = pipeline;
    // MFA limit 1: one runs, the next trips it.
    const first = [world.newUser(), world.newUser()].map((u) =>
      cloudEvent('mfa.enabled', { user: u.upn }),
    );
    for (const e of first) await active.send('mfa-enabled', e);
    const records = await settled(
      first.map((e) => e.id as string),
      'the first MFA events',
    );
    expect(records.map((r) => r.outcome).sort()).toEqual(['held', 'succeeded']);

    // While the operator's release records its decision, the feed delivers one more.
    const late = cloudEvent('mfa.enabled', { user: world.newUser().upn });
    const store = world.runtime.guardrailStore;
    let injected = false;
    const racing: GuardrailStore = {
      read: (route) => store.read(route),
      write: (route, state, etag) => store.write(route, state, etag),
      decisionFor: (route, key) => store.decisionFor(route, key),
      decidedInTrip: (route, trip) => store.decidedInTrip(route, trip),
      decide: async (route, key, decision) => {
        const standing = await store.decide(route, key, decision);
        if (!injected) {
          injected = true;
          await active.send('mfa-enabled', late);
          await waitFor('the late event to be held', async () =>
            (await latestRecordFor(world.runtime.audit, late.id as string))?.outcome === 'held'
              ? true
              : undefined,
          );
        }
        return standing;
      },
    };
    const result = await decideHeld(
      {
        audit: world.runtime.audit,
        store: racing,
        scheduler: world.runtime.scheduler,
        queues: world.runtime.config.queues,
      },
      'release',
      {
        route: 'mfaEnabled',
        by: 'ops-oncall',
        reason: 'checked',
        enqueueAt: () => new Date(),
      },
    );
    expect(result.sent).toHaveLength(1);
    expect(result.tripCleared).toBe(false);
    expect(result.stillHeld).toBe(1);
    expect((await store.read('mfaEnabled'))?.state.trip).toBeDefined();

    // The next release decides the late one: then the trip clears.
    const again = await runCli(
      ['guardrail', 'release', '--kind', 'mfa', '--reason', 'the late one too', '--json'],
      cliEnv,
    );
    expect(again.code).toBe(0);
    const second = JSON.parse(again.stdout) as {
      sent: Array<{ eventId: string }>;
      tripCleared: boolean;
    };
    expect(second.sent.map((s) => s.eventId)).toContain(late.id);
    expect(second.tripCleared).toBe(true);
    const done: AuditRecord[] = await recordsSettled(
      world.runtime.audit,
      [late.id as string],
      (r) => r.outcome === 'succeeded',
      'the late event released',
    );
    expect(done[0]?.guardrail?.release?.reason).toBe('the late one too');
  }, 90_000);
});
