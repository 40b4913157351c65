import { latestRecordFor } from '../../shared/core/auditRecords';
import { BREAKGLASS_ID } from '../../dev/graph-standin/index';
import type { Runtime } from '../../shared/app/runtime';
import { runFaultRun, startFaultRunSetup, type FaultRunSetup } from '../../bench/faultRun';
import type { Pipeline } from '../support/runner';
import type { TcpProxy } from '../support/tcpProxy';
import { waitFor } from '../support/wait';
import { cloudEvent, type World } from '../support/world';

// The driver is shared with the benchmark (`npm run bench` runs it at 10,000 events).
let setup: FaultRunSetup;
let world: World;
let proxy: TcpProxy;
let runtime: Runtime;
let pipeline: Pipeline;

beforeAll(async () => {
  setup = await startFaultRunSetup();
  ({ world, proxy, runtime, pipeline } = setup);
});
afterAll(async () => {
  await setup.stop();
});

const allRecords = () => setup.allRecords();

it('converges to one final record when the process loses the audit write after the Graph write', async () => {
  const user = world.graph.addUser({
    id: 'c4a5e000-0000-4000-8000-0000000000c1',
    userPrincipalName: 'crash.test@contoso.com',
  });
  world.graph.injectFault({ kind: 'delay', operation: 'revoke', ms: 300, userKey: user.id });
  const event = cloudEvent('mfa.enabled', { user: user.userPrincipalName });
  await pipeline.send('mfa-enabled', event);
  // The revoke has reached Graph: take the audit store away before the record is written.
  await waitFor('the revoke to reach Graph', () =>
    world.graph.requests.some((r) => r.operation === 'revoke' && r.userId === user.id),
  );
  proxy.setDown(true);
  await new Promise((resolve) => setTimeout(resolve, 8000));
  proxy.setDown(false);

  const record = await waitFor(
    'the event to succeed',
    async () => {
      const r = await latestRecordFor(runtime.audit, event.id as string);
      return r?.outcome === 'succeeded' ? r : undefined;
    },
    60_000,
  ).catch(async (e) => {
    console.log(
      'DEBUG',
      JSON.stringify(await runtime.audit.findByEventId(event.id as string), null, 1),
      pipeline.logs.map((l) => l.text).join('\n'),
    );
    throw e;
  });
  const revokes = world.graph
    .writes()
    .filter((r) => r.operation === 'revoke' && r.userId === user.id);
  expect(revokes.length).toBeGreaterThanOrEqual(2); // the lost attempt really wrote to Graph
  expect(record.attempts).toBeGreaterThanOrEqual(2);
  expect((await allRecords()).filter((e) => e.eventId === event.id)).toHaveLength(1);
}, 90_000);

it('ends 1,000 events under injected faults and an adversarial mix succeeded or dead-lettered with a reason, one truthful record each', async () => {
  // A 30 s storm in which Graph answers every write 429: no departure may be given up.
  const run = await runFaultRun(setup, { events: 1000, stormMs: 30_000 });
  const { plan, records, collisions, invalidReuses, races, deadLetters, lost, figures } = run;

  // Every event ended succeeded, or in the dead-letter queue with a reason and an audited error.
  const deadLetteredIds = new Set(deadLetters.map((d) => (d.body as { id?: string }).id));
  // A valid event that did not succeed is shown with its code, message and attempts.
  const validNotSucceeded = [];
  for (const [i, item] of plan.entries()) {
    const record = records[i];
    if (item.kind === 'valid') {
      if (record?.outcome !== 'succeeded') {
        validNotSucceeded.push({
          eventId: item.event.id,
          outcome: record?.outcome,
          errorCode: record?.errorCode,
          errorMessage: record?.errorMessage,
          attempts: record?.attempts,
          actions: record?.actions,
        });
      }
    } else {
      expect(deadLetteredIds.has(item.event.id as string)).toBe(true);
      expect(record?.errorCode).toBeDefined();
      expect(record?.outcome).toBe(item.kind === 'protected' ? 'refused' : 'failed');
    }
  }
  expect(validNotSucceeded).toEqual([]);
  // A reused id never hid the departure it was reused from, nor the event that reused it.
  for (const collision of collisions) {
    const ofUser = await world.runtime.audit.findByUser(collision.user.id);
    expect(ofUser.map((s) => s.record.outcome)).toEqual(['succeeded']);
  }
  // Every invalid message that reused a good id has its own record, dead-lettered; the good one stands.
  for (const bogus of invalidReuses) {
    const all = await world.runtime.audit.findByEventId(bogus.id as string);
    expect(all.map((r) => `${r.route}:${r.outcome}`).sort()).toEqual([
      'employeeLeaving:failed',
      'employeeLeaving:succeeded',
    ]);
  }
  // A cancellation racing its leave date: the audit says cancelled exactly when Graph saw no write.
  let cancelledInTime = 0;
  const lostRaces: typeof races = [];
  for (const race of races) {
    const departure = await latestRecordFor(world.runtime.audit, race.departure.id as string);
    const cancel = await latestRecordFor(world.runtime.audit, race.cancel.id as string);
    const written = world.graph.writes().some((w) => w.userId === race.user.id);
    // A departure superseded by the cancellation keeps on its record what an earlier run wrote.
    const departureWrote = departure?.actions.some((a) => a.status !== 'not-attempted') ?? false;
    if (
      departure?.outcome === 'cancelled' ||
      (departure?.outcome === 'superseded' && !departureWrote)
    ) {
      cancelledInTime++;
      // On failure, the records and Graph's writes say what happened.
      if (written)
        throw new Error(
          `Race ${race.departure.id as string}: no write recorded, but Graph saw: ${JSON.stringify(
            {
              departure,
              cancel,
              writes: world.graph
                .writes()
                .filter((w) => w.userId === race.user.id)
                .map(
                  (w) =>
                    `${String(w.at)} ${w.method} ${w.path} ${JSON.stringify(w.body)} ${w.status}`,
                ),
            },
            null,
            1,
          )}`,
        );
      expect(cancel?.outcome).toBe('succeeded');
    } else {
      expect({ departure, cancel }).toMatchObject({
        departure: { outcome: departure?.outcome === 'superseded' ? 'superseded' : 'succeeded' },
      });
      expect(written).toBe(true);
      expect(cancel).toMatchObject({ outcome: 'failed', errorCode: 'DepartureAlreadyExecuted' });
      lostRaces.push(race);
    }
  }
  expect(lost).toBe(0);
  expect(run.figures.stormThrottled).toBeGreaterThan(0);
  expect(run.figures.departuresGivenUp).toBe(0);
  // Dead letters hold exactly the events that failed for good: every one of them, and nothing
  // else (an event may have more than one copy there when a copy parked for a retry also ends
  // in a permanent failure).
  const permanentIds = new Set([
    ...plan.filter((p) => p.kind !== 'valid').map((p) => p.event.id as string),
    ...invalidReuses.map((bogus) => bogus.id as string),
    ...lostRaces.map((race) => race.cancel.id as string),
  ]);
  const deadLetteredEvents = new Set(deadLetters.map((d) => (d.body as { id?: string }).id ?? ''));
  expect([...deadLetteredEvents].sort()).toEqual([...permanentIds].sort());
  for (const deadLetter of deadLetters) expect(deadLetter.reason).toBe('MaxDeliveryCountExceeded');

  // Exactly one record per event (route, source, id and content) and per invalid message.
  const { entities } = run;
  const keys = new Set(entities.map((e) => `${String(e.partitionKey)}/${String(e.rowKey)}`));
  expect(keys.size).toBe(entities.length);
  const byEventAndRoute = new Map<string, string[]>();
  for (const e of entities) {
    const key = `${String(e.route)}:${String(e.eventId)}`;
    byEventAndRoute.set(key, [
      ...(byEventAndRoute.get(key) ?? []),
      `${String(e.outcome)} ${typeof e.errorCode === 'string' ? e.errorCode : ''} ${String(e.messageId)} ${String(e.rowKey)}`,
    ]);
  }
  // An event id with more records than the plan gives it, named if the count below fails.
  const extra = [...byEventAndRoute].filter(
    ([key, records]) =>
      records.length > (invalidReuses.some((b) => key.endsWith(`:${String(b.id)}`)) ? 2 : 1),
  );
  expect(extra).toEqual([]);
  expect(entities).toHaveLength(
    plan.length + collisions.length + invalidReuses.length + races.length * 2,
  );
  const perEvent = new Map<string, number>();
  for (const entity of entities.filter((e) => String(e.eventId).startsWith('fault-')))
    perEvent.set(String(entity.eventId), (perEvent.get(String(entity.eventId)) ?? 0) + 1);
  expect(perEvent.size).toBe(plan.length);
  expect(entities.filter((e) => e.outcome === 'in-progress')).toEqual([]);

  // No Graph write for a refused or invalid event; unknown users were only read.
  const writes = world.graph.writes();
  expect(writes.filter((w) => w.userId === BREAKGLASS_ID)).toHaveLength(0);
  expect(world.graph.requests.filter((r) => r.decodedPath.includes('fault user'))).toHaveLength(0);
  expect(writes.filter((w) => w.decodedPath.includes('/gone'))).toHaveLength(0);

  expect(figures.cancelledInTime).toBe(cancelledInTime);
  expect(figures.records).toBe(figures.expectedRecords);
  // The figures docs/testing.md and the closing note quote.
  console.log(`fault run: ${JSON.stringify(figures)}`);
  expect(figures.throttled429).toBeGreaterThan(0);
  expect(figures.tokenEndpointFailures).toBeGreaterThan(0);
  expect(figures.auditOutageRetries).toBeGreaterThan(0);
}, 400_000);
