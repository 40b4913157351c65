import { TableClient } from '@azure/data-tables';
import { latestRecordFor } from '../../shared/core/auditRecords';
import { BREAKGLASS_ID, BREAKGLASS_UPN } from '../../dev/graph-standin/index';
import type { AuditRecord } from '../../shared/core/ports';
import type { Runtime } from '../../shared/app/runtime';
import { startPipeline, type Pipeline } from '../support/runner';
import { startTcpProxy, type TcpProxy } from '../support/tcpProxy';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let proxy: TcpProxy;
let runtime: Runtime;
let pipeline: Pipeline;

beforeAll(async () => {
  // Tokens under 300 s are not cached, so a token endpoint outage is felt at once.
  world = await startWorld(
    { RETRY_MAX_ATTEMPTS: '20', RETRY_BASE_DELAY_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '2' },
    { tokenLifetimeSeconds: 120 },
  );
  // The audit store behind a proxy that can fail: a real outage, not a mock.
  const azuritePort = Number(
    /TableEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(world.env.AUDIT_TABLE_CONNECTION_STRING!)?.[1],
  );
  proxy = await startTcpProxy(azuritePort);
  runtime = world.runtimeWith({
    AUDIT_TABLE_CONNECTION_STRING: world.env.AUDIT_TABLE_CONNECTION_STRING!.replace(
      `127.0.0.1:${azuritePort}`,
      `127.0.0.1:${proxy.port}`,
    ),
  });
  pipeline = startPipeline(world, runtime, 8);
});
afterAll(async () => {
  await pipeline.stop();
  await proxy.stop();
  await world.stop();
});

async function allRecords(): Promise<Array<Record<string, unknown>>> {
  const table = TableClient.fromConnectionString(
    world.env.AUDIT_TABLE_CONNECTION_STRING!,
    world.env.AUDIT_TABLE_NAME!,
    {
      allowInsecureConnection: true,
    },
  );
  const entities: Array<Record<string, unknown>> = [];
  for await (const entity of table.listEntities()) entities.push(entity);
  return entities;
}

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
  const started = Date.now();
  const users = Array.from({ length: 1000 }, (_, i) => {
    const suffix = String(i).padStart(12, '0');
    return world.graph.addUser({
      id: `f0000000-0000-4000-8000-${suffix}`,
      userPrincipalName: `fault.user${i}@contoso.com`,
    });
  });
  type Kind = 'valid' | 'invalid' | 'protected' | 'unknown';
  const plan = users.map((user, i) => {
    const kind: Kind =
      i % 20 === 0 ? 'invalid' : i % 20 === 1 ? 'protected' : i % 20 === 2 ? 'unknown' : 'valid';
    const leaving = i % 2 === 0;
    const subject =
      kind === 'invalid'
        ? `fault user ${i}`
        : kind === 'protected'
          ? BREAKGLASS_UPN
          : kind === 'unknown'
            ? `gone${i}@contoso.com`
            : user.userPrincipalName;
    const event = leaving
      ? cloudEvent('employee.leaving', { user: subject, resetPassword: i % 5 === 0 }, `fault-${i}`)
      : cloudEvent('mfa.enabled', { user: subject }, `fault-${i}`);
    return {
      kind,
      event,
      queue: leaving ? ('employee-leaving' as const) : ('mfa-enabled' as const),
    };
  });
  const expectedDeadLetters = plan.filter((p) => p.kind !== 'valid').length;

  // Faults: a Graph write quota storm, 5xx bursts, dropped connections, a token endpoint outage
  // and an audit store outage, while duplicates of some events arrive with new message ids.
  world.graph.throttle({ writesPerWindow: 20, windowMs: 1000, retryAfterSeconds: 1 });
  const burst503 = world.graph.injectFault({ status: 503, times: 60 });
  const resets = world.graph.injectFault({ kind: 'reset', times: 25 });
  // Outages while the events are being processed: the token endpoint, then the audit store.
  const outages = [
    setTimeout(() => world.identity.setDown(true), 1500),
    setTimeout(() => world.identity.setDown(false), 3500),
    setTimeout(() => proxy.setDown(true), 5000),
    setTimeout(() => proxy.setDown(false), 15_000),
  ];
  // The adversarial mix (issue 7): ids reused on the other queue for other users, concurrent
  // duplicates, invalid messages reusing good ids, and cancellations racing leave dates.
  const validLeaving = plan.filter((p) => p.kind === 'valid' && p.queue === 'employee-leaving');
  const collisions = validLeaving.slice(0, 40).map((p, n) => {
    const other = world.graph.addUser({
      id: `c0111de0-0000-4000-8000-${String(n).padStart(12, '0')}`,
      userPrincipalName: `collide.user${n}@contoso.com`,
    });
    return {
      user: other,
      event: cloudEvent('mfa.enabled', { user: other.userPrincipalName }, p.event.id as string),
    };
  });
  const invalidReuses = validLeaving
    .slice(40, 70)
    .map((p): Record<string, unknown> => ({ ...p.event, data: { user: 'not a user' } }));
  const races = Array.from({ length: 20 }, (_, n) => {
    const user = world.graph.addUser({
      id: `4ace0000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      userPrincipalName: `race.user${n}@contoso.com`,
    });
    const effectiveAt = new Date(Date.now() + 8_000 + n * 100).toISOString();
    return {
      user,
      departure: cloudEvent(
        'employee.leaving',
        { user: user.userPrincipalName, effectiveAt },
        `race-${n}`,
      ),
      cancel: cloudEvent(
        'employee.leaving.cancelled',
        { user: user.userPrincipalName },
        `race-${n}-cancel`,
      ),
    };
  });
  const sendCancel = (race: (typeof races)[number]) =>
    pipeline.send('employee-leaving', race.cancel, `${race.cancel.id as string}-m`);
  for (const race of races)
    await pipeline.send('employee-leaving', race.departure, `${race.departure.id as string}-m`);
  // Half are cancelled well ahead of their date, half right at it: both ends of the race.
  for (const race of races.filter((_, n) => n % 2 === 0)) await sendCancel(race);
  const cancellations = races
    .filter((_, n) => n % 2 === 1)
    .map((race, n) => setTimeout(() => void sendCancel(race), 7_900 + n * 200));

  let duplicatesSent = 0;
  for (const [i, item] of plan.entries()) {
    if (item.kind === 'valid' && i % 25 === 3) {
      // The same event twice at the same moment, under different message ids.
      await Promise.all([
        pipeline.send(item.queue, item.event, `m-${i}`),
        pipeline.send(item.queue, item.event, `m-${i}-again`),
      ]);
      duplicatesSent++;
    } else {
      await pipeline.send(item.queue, item.event, `m-${i}`);
    }
  }
  for (const [n, collision] of collisions.entries())
    await pipeline.send('mfa-enabled', collision.event, `c-${n}`);
  for (const [n, bogus] of invalidReuses.entries())
    await pipeline.send('employee-leaving', bogus, `bogus-${n}`);
  const burst500 = world.graph.injectFault({ status: 500, times: 40 });

  const dlqCount = () =>
    world.serviceBus.stats('employee-leaving').deadLettered +
    world.serviceBus.stats('mfa-enabled').deadLettered;
  let records: Array<AuditRecord | undefined> = [];
  await waitFor(
    'every event to reach its end',
    async () => {
      if (dlqCount() < expectedDeadLetters) return false;
      records = await Promise.all(
        plan.map((p) => latestRecordFor(world.runtime.audit, p.event.id as string)),
      );
      if (
        !records.every((r, i) =>
          plan[i]?.kind === 'valid' ? r?.outcome === 'succeeded' : r !== undefined,
        )
      )
        return false;
      const raceRecords = await Promise.all(
        races.map((race) => world.runtime.audit.findByEventId(race.cancel.id as string)),
      );
      const collisionsDone = await Promise.all(
        collisions.map(async (c) =>
          (await world.runtime.audit.findByUser(c.user.id)).some(
            (s) => s.record.outcome === 'succeeded',
          ),
        ),
      );
      return (
        raceRecords.every((r) => r.some((x) => x.outcome !== 'in-progress')) &&
        collisionsDone.every(Boolean)
      );
    },
    300_000,
  );
  outages.forEach(clearTimeout);
  cancellations.forEach(clearTimeout);
  proxy.setDown(false);
  world.identity.setDown(false);

  // Every event ended succeeded, or in the dead-letter queue with a reason and an audited error.
  const deadLetters = [
    ...world.serviceBus.deadLetters('employee-leaving'),
    ...world.serviceBus.deadLetters('mfa-enabled'),
  ];
  const deadLetteredIds = new Set(deadLetters.map((d) => (d.body as { id?: string }).id));
  let lost = 0;
  for (const [i, item] of plan.entries()) {
    const record = records[i];
    if (item.kind === 'valid') {
      if (record?.outcome !== 'succeeded') lost++;
    } else {
      if (!deadLetteredIds.has(item.event.id as string) || record?.errorCode === undefined) lost++;
      expect(record?.outcome).toBe(item.kind === 'protected' ? 'refused' : 'failed');
    }
  }
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
    if (departure?.outcome === 'cancelled') {
      cancelledInTime++;
      expect(written).toBe(false);
      expect(cancel?.outcome).toBe('succeeded');
    } else {
      expect(departure?.outcome).toBe('succeeded');
      expect(written).toBe(true);
      expect(cancel).toMatchObject({ outcome: 'failed', errorCode: 'DepartureAlreadyExecuted' });
      lostRaces.push(race);
    }
  }
  expect(lost).toBe(0);
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
  const entities = (await allRecords()).filter((e) => /^(fault|race)-/.test(String(e.eventId)));
  const keys = new Set(entities.map((e) => `${String(e.partitionKey)}/${String(e.rowKey)}`));
  expect(keys.size).toBe(entities.length);
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

  const faulted = world.graph.requests.filter((r) => r.fault !== undefined);
  const figures = {
    events: plan.length,
    duplicateDeliveries: duplicatesSent,
    graphRequests: world.graph.requests.length,
    throttled429: faulted.filter((r) => r.fault === 'throttle').length,
    injected5xx: burst503.hits + burst500.hits,
    connectionResets: resets.hits,
    tokenEndpointFailures: world.identity.requests.filter((r) => r.status >= 500).length,
    auditOutageRetries: pipeline.logs.filter((l) => l.text.includes('AuditUnavailable')).length,
    succeeded: records.filter((r) => r?.outcome === 'succeeded').length,
    deadLettered: deadLetters.length,
    lost,
    collidingIds: collisions.length,
    invalidReusingIds: invalidReuses.length,
    cancellationRaces: races.length,
    cancelledInTime,
    records: entities.length,
    maxAttempts: Math.max(...records.map((r) => r?.attempts ?? 0)),
    seconds: Math.round((Date.now() - started) / 1000),
  };
  // The figures docs/testing.md and the closing note quote.
  console.log(`fault run: ${JSON.stringify(figures)}`);
  expect(figures.throttled429).toBeGreaterThan(0);
  expect(figures.tokenEndpointFailures).toBeGreaterThan(0);
  expect(figures.auditOutageRetries).toBeGreaterThan(0);
}, 400_000);
