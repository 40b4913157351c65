/**
 * The adversarial fault run, one driver for the integration test (1,000 events, every assertion in
 * test/integration/faultRun.test.ts) and the benchmark (`npm run bench`, 10,000 events by default):
 * the real handlers, SDKs and stand-ins, with a Graph write quota storm (429), 5xx bursts, dropped
 * connections, a token endpoint outage and an audit store outage (a TCP proxy cut, not a mock),
 * while the adversarial mix arrives: duplicates under new message ids, invalid and refused events,
 * unknown users, ids reused on the other queue, invalid messages reusing good ids, and
 * cancellations racing their leave dates.
 *
 * The driver only drives and collects: what the run must show is asserted by the test and counted
 * by the benchmark, from the same collected state.
 */
import { TableClient } from '@azure/data-tables';
import { startAzuriteTable } from '../dev/azurite';
import { BREAKGLASS_UPN } from '../dev/graph-standin/index';
import type { DirectoryUser } from '../dev/graph-standin/index';
import type { DeadLetteredMessage } from '../dev/servicebus-standin/index';
import { latestRecordFor } from '../shared/core/auditRecords';
import type { AuditRecord } from '../shared/core/ports';
import type { RouteName } from '../shared/core/routes';
import type { Runtime } from '../shared/app/runtime';
import { startPipeline, type Pipeline } from '../test/support/runner';
import { startTcpProxy, type TcpProxy } from '../test/support/tcpProxy';
import { waitFor } from '../test/support/wait';
import { cloudEvent, startWorld, type World } from '../test/support/world';

/** The stand-ins, an audit store that can fail, and one pipeline of 8 concurrent handlers. */
export interface FaultRunSetup {
  world: World;
  /** Between the runtime and Azurite: `setDown(true)` is an audit store outage. */
  proxy: TcpProxy;
  /** The runtime the pipeline runs, its audit store behind the proxy. */
  runtime: Runtime;
  pipeline: Pipeline;
  /** Every entity of the audit table, read directly (not through the proxy). */
  allRecords(): Promise<Array<Record<string, unknown>>>;
  stop(): Promise<void>;
}

export async function startFaultRunSetup(): Promise<FaultRunSetup> {
  // Tokens under 300 s are not cached, so a token endpoint outage is felt at once.
  const world = await startWorld(
    { RETRY_MAX_ATTEMPTS: '20', RETRY_BASE_DELAY_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '2' },
    { tokenLifetimeSeconds: 120 },
  );
  // The audit store behind a proxy that can fail: a real outage, not a mock.
  const connection = world.env.AUDIT_TABLE_CONNECTION_STRING ?? '';
  const azuritePort = Number(/TableEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(connection)?.[1]);
  const proxy = await startTcpProxy(azuritePort);
  const runtime = world.runtimeWith({
    AUDIT_TABLE_CONNECTION_STRING: connection.replace(
      `127.0.0.1:${azuritePort}`,
      `127.0.0.1:${proxy.port}`,
    ),
  });
  const pipeline = startPipeline(world, runtime, 8);
  return {
    world,
    proxy,
    runtime,
    pipeline,
    async allRecords() {
      const table = TableClient.fromConnectionString(connection, world.env.AUDIT_TABLE_NAME ?? '', {
        allowInsecureConnection: true,
      });
      const entities: Array<Record<string, unknown>> = [];
      for await (const entity of table.listEntities()) entities.push(entity);
      return entities;
    },
    async stop() {
      await pipeline.stop();
      await proxy.stop();
      await world.stop();
    },
  };
}

export type PlannedKind = 'valid' | 'invalid' | 'protected' | 'unknown';
type Event = Record<string, unknown>;

export interface PlannedEvent {
  kind: PlannedKind;
  event: Event;
  queue: 'employee-leaving' | 'mfa-enabled';
}

/** The route whose records tell a planned event's story (its id may be reused on the other). */
const routeOf = (p: PlannedEvent): RouteName =>
  p.queue === 'employee-leaving' ? 'employeeLeaving' : 'mfaEnabled';

export interface CancellationRace {
  user: DirectoryUser;
  departure: Event;
  cancel: Event;
}

export interface FaultRunOutcome {
  plan: PlannedEvent[];
  /** The latest record of each planned event, read after the run ended (same order as plan). */
  records: Array<AuditRecord | undefined>;
  /** mfa.enabled events reusing a departure's id, each for a user of its own. */
  collisions: Array<{ user: DirectoryUser; event: Event }>;
  /** Invalid messages reusing a good departure's id. */
  invalidReuses: Event[];
  races: CancellationRace[];
  deadLetters: DeadLetteredMessage[];
  /** Audit entities of this run's events (ids fault-* and race-*). */
  entities: Array<Record<string, unknown>>;
  /** Events that did not end as they must: valid not succeeded, others not dead-lettered with a code. */
  lost: number;
  figures: FaultRunFigures;
}

export interface FaultRunFigures {
  events: number;
  duplicateDeliveries: number;
  graphRequests: number;
  throttled429: number;
  injected5xx: number;
  connectionResets: number;
  tokenEndpointFailures: number;
  auditOutageRetries: number;
  succeeded: number;
  deadLettered: number;
  lost: number;
  collidingIds: number;
  invalidReusingIds: number;
  cancellationRaces: number;
  cancelledInTime: number;
  /** Audit entities of the run's events, and how many there must be (one per event and message). */
  records: number;
  expectedRecords: number;
  /** Events with more than one record for the same route, source, id and content. */
  duplicateRecords: number;
  inProgressRecords: number;
  maxAttempts: number;
  /** How long every Graph write was answered 429 (the storm phase), and how many 429s it gave. */
  stormSeconds: number;
  stormThrottled: number;
  /** Valid departures that ended failed or dead-lettered for a transient cause: must be 0. */
  departuresGivenUp: number;
  /** Valid MFA events given up the same way (they keep an attempt limit; waits use none). */
  mfaGivenUp: number;
  seconds: number;
}

export interface FaultRunOptions {
  /** Planned events (the mix scales with it: 1 in 20 invalid, protected or unknown each). */
  events: number;
  /** How long the run may take to reach its end (default 300 s per 1,000 events). */
  timeoutMs?: number;
  /**
   * A phase in which Graph answers every write 429 (Retry-After 20 s), starting after the audit
   * outage: throttling must give up no departure. 0 turns it off.
   */
  stormMs?: number;
  /** Progress lines (the benchmark prints them; the test stays quiet). */
  log?: (line: string) => void;
}

/**
 * Audit reads in flight at once while checking the run: 10,000 at once left Azurite unable to
 * answer within the audit client's 30 s bound.
 */
const READS_AT_ONCE = 64;

async function inChunks<T, R>(items: T[], size: number, read: (item: T) => Promise<R>) {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += size) {
    results.push(...(await Promise.all(items.slice(i, i + size).map(read))));
  }
  return results;
}

/** Drives one fault run and collects what it left: records, dead letters, Graph's requests. */
export async function runFaultRun(
  setup: FaultRunSetup,
  options: FaultRunOptions,
): Promise<FaultRunOutcome> {
  const { world, proxy, pipeline } = setup;
  const { events, log = () => undefined } = options;
  // Faults and the adversarial mix grow with the run, so each thousand events meets the same.
  const scale = Math.max(1, Math.round(events / 1000));
  const stormMs = options.stormMs ?? 0;
  const timeoutMs = (options.timeoutMs ?? 300_000 * scale) + stormMs;
  const started = Date.now();
  const users = Array.from({ length: events }, (_, i) =>
    world.graph.addUser({
      id: `f0000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      userPrincipalName: `fault.user${i}@contoso.com`,
    }),
  );
  const plan = users.map((user, i): PlannedEvent => {
    const kind: PlannedKind =
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
    return { kind, event, queue: leaving ? 'employee-leaving' : 'mfa-enabled' };
  });
  const expectedDeadLetters = plan.filter((p) => p.kind !== 'valid').length;

  // Faults: a Graph write quota storm, 5xx bursts, dropped connections, a token endpoint outage
  // and an audit store outage, while duplicates of some events arrive with new message ids.
  const quota = { writesPerWindow: 20, windowMs: 1000, retryAfterSeconds: 1 };
  world.graph.throttle(quota);
  // The storm: one write per (long) window, so every other write is answered 429 until it ends.
  const STORM_STARTS_MS = 16_000;
  let stormThrottledBefore = 0;
  let stormThrottled = 0;
  const storm =
    stormMs > 0
      ? [
          setTimeout(() => {
            stormThrottledBefore = world.graph.throttledCount();
            world.graph.throttle({
              writesPerWindow: 1,
              windowMs: stormMs * 10,
              retryAfterSeconds: 20,
            });
            log(`fault run: storm: every Graph write answered 429 for ${stormMs / 1000} s`);
          }, STORM_STARTS_MS),
          setTimeout(() => {
            stormThrottled = world.graph.throttledCount() - stormThrottledBefore;
            world.graph.throttle(quota);
            log(`fault run: storm over (${stormThrottled} writes answered 429)`);
          }, STORM_STARTS_MS + stormMs),
        ]
      : [];
  const burst503 = world.graph.injectFault({ status: 503, times: 60 * scale });
  const resets = world.graph.injectFault({ kind: 'reset', times: 25 * scale });
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
  const collisions = validLeaving.slice(0, 40 * scale).map((p, n) => {
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
    .slice(40 * scale, 70 * scale)
    .map((p): Event => ({ ...p.event, data: { user: 'not a user' } }));
  const races = Array.from({ length: 20 }, (_, n): CancellationRace => {
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
  const sendCancel = (race: CancellationRace) =>
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
    if ((i + 1) % 2000 === 0) {
      log(`fault run: ${i + 1} sent in ${Math.round((Date.now() - started) / 1000)} s`);
    }
  }
  for (const [n, collision] of collisions.entries())
    await pipeline.send('mfa-enabled', collision.event, `c-${n}`);
  for (const [n, bogus] of invalidReuses.entries())
    await pipeline.send('employee-leaving', bogus, `bogus-${n}`);
  const burst500 = world.graph.injectFault({ status: 500, times: 40 * scale });
  log(`fault run: ${plan.length} events sent in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const audit = world.runtime.audit;
  const dlqCount = () =>
    world.serviceBus.stats('employee-leaving').deadLettered +
    world.serviceBus.stats('mfa-enabled').deadLettered;
  // A succeeded record of a valid event is final: it is not read again on the next poll (at
  // 10,000 events, reading every record ten times a second would load the store more than the run).
  const final = new Map<number, AuditRecord>();
  let lastProgress = 0;
  try {
    await waitFor(
      'every event to reach its end',
      async () => {
        if (Date.now() - lastProgress > 30_000) {
          lastProgress = Date.now();
          const completed = pipeline.settled.filter((x) => x.settlement === 'complete').length;
          log(
            `fault run: ${Math.round((Date.now() - started) / 1000)} s, ${completed} deliveries completed, ${dlqCount()}/${expectedDeadLetters}+ dead-lettered, ${final.size} confirmed succeeded`,
          );
        }
        if (dlqCount() < expectedDeadLetters) return false;
        const pending = plan.flatMap((p, i) => (final.has(i) ? [] : [{ p, i }]));
        // A read that fails (the audit store is slow under the run) is tried on the next poll.
        const found = await inChunks(pending, READS_AT_ONCE, ({ p }) =>
          latestRecordFor(audit, p.event.id as string, routeOf(p)).catch(() => undefined),
        );
        // A permanent failure has its record before its last delivery: it has ended once it is
        // in the dead-letter queue (the count above can be reached by failed cancellations first).
        const deadLettered = new Set(
          [
            ...world.serviceBus.deadLetters('employee-leaving'),
            ...world.serviceBus.deadLetters('mfa-enabled'),
          ].map((d) => (d.body as { id?: string } | null)?.id),
        );
        let ended = true;
        for (const [n, { p, i }] of pending.entries()) {
          const record = found[n];
          if (p.kind === 'valid' && record?.outcome === 'succeeded') final.set(i, record);
          else if (p.kind === 'valid' || record === undefined) ended = false;
          else if (!deadLettered.has(p.event.id as string)) ended = false;
        }
        if (!ended) return false;
        const raceRecords = await inChunks(races, READS_AT_ONCE, (race) =>
          audit.findByEventId(race.cancel.id as string).catch(() => []),
        );
        const collisionsDone = await inChunks(collisions, READS_AT_ONCE, async (c) =>
          (await audit.findByUser(c.user.id).catch(() => [])).some(
            (s) => s.record.outcome === 'succeeded',
          ),
        );
        return (
          raceRecords.every((r) => r.some((x) => x.outcome !== 'in-progress')) &&
          collisionsDone.every(Boolean)
        );
      },
      timeoutMs,
    );
  } catch (error) {
    // Say which events did not end, and where they stand, before giving up.
    const dead = new Set(
      [
        ...world.serviceBus.deadLetters('employee-leaving'),
        ...world.serviceBus.deadLetters('mfa-enabled'),
      ].map((d) => (d.body as { id?: string } | null)?.id),
    );
    const open = plan.filter(
      (p, i) => !final.has(i) && (p.kind === 'valid' || !dead.has(p.event.id as string)),
    );
    for (const p of open.slice(0, 20)) {
      const records = await audit.findByEventId(p.event.id as string).catch(() => []);
      for (const line of pipeline.logs.filter((l) => l.text.includes(`"${String(p.event.id)}"`)))
        log(`fault run:   ${line.level}: ${line.text.slice(0, 400)}`);
      const everywhere = [
        ...world.serviceBus.deadLetters('employee-leaving'),
        ...world.serviceBus.deadLetters('mfa-enabled'),
      ].filter((d) => JSON.stringify(d).includes(String(p.event.id)));
      log(
        `fault run:   in a dead-letter queue by text: ${everywhere.length} ${JSON.stringify(everywhere).slice(0, 300)}`,
      );
      log(
        `fault run:   settled: ${JSON.stringify(pipeline.settled.filter((x) => x.messageId.endsWith(`-${String(p.event.id).replace('fault-', '')}`)))}`,
      );
      log(
        `fault run: not ended: ${p.kind} ${String(p.event.id)}: ${JSON.stringify(
          records.map((r) => ({
            outcome: r.outcome,
            errorCode: r.errorCode,
            attempts: r.attempts,
            duplicates: r.duplicates,
            messageId: r.messageId,
            claimedBy: r.claimedBy,
            nextAttemptAt: r.nextAttemptAt,
          })),
        )}`,
      );
    }
    const receiverErrors = pipeline.logs.filter((l) => l.text.startsWith('receiver error'));
    log(
      `fault run: ${receiverErrors.length} receiver errors: ${receiverErrors
        .slice(0, 8)
        .map((l) => l.text.slice(0, 300))
        .join(' | ')}`,
    );
    for (const p of open.slice(0, 5))
      for (const line of pipeline.logs.filter((l) => l.text.includes(`"${String(p.event.id)}"`)))
        log(`fault run:   ${String(p.event.id)} ${line.level}: ${line.text.slice(0, 300)}`);
    log(
      `fault run: ${open.length} not ended; queue stats ${JSON.stringify([world.serviceBus.stats('employee-leaving'), world.serviceBus.stats('mfa-enabled')])}`,
    );
    throw error;
  } finally {
    outages.forEach(clearTimeout);
    storm.forEach(clearTimeout);
    cancellations.forEach(clearTimeout);
    proxy.setDown(false);
    world.identity.setDown(false);
  }
  const seconds = Math.round((Date.now() - started) / 1000);

  const records = await inChunks(plan, READS_AT_ONCE, (p) =>
    latestRecordFor(audit, p.event.id as string, routeOf(p)),
  );
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
    } else if (
      !deadLetteredIds.has(item.event.id as string) ||
      record?.errorCode === undefined ||
      record.outcome !== (item.kind === 'protected' ? 'refused' : 'failed')
    ) {
      lost++;
    }
  }
  // Given up: a valid event whose record ended failed for good (RetriesExhausted or the like).
  const givenUp = (queue: string) =>
    plan.filter(
      (p, i) =>
        p.kind === 'valid' &&
        p.queue === queue &&
        records[i]?.outcome === 'failed' &&
        records[i]?.retryable === false,
    ).length;
  let cancelledInTime = 0;
  for (const race of races) {
    const departure = await latestRecordFor(audit, race.departure.id as string);
    // Called off before any write: cancelled, or superseded by the cancellation with nothing begun.
    const wroteNothing = departure?.actions.every((a) => a.status === 'not-attempted') ?? false;
    if (departure?.outcome === 'cancelled' || (departure?.outcome === 'superseded' && wroteNothing))
      cancelledInTime++;
  }
  const entities = (await setup.allRecords()).filter((e) =>
    /^(fault|race)-/.test(String(e.eventId)),
  );
  const keys = new Set(entities.map((e) => `${String(e.partitionKey)}/${String(e.rowKey)}`));
  const faulted = world.graph.requests.filter((r) => r.fault !== undefined);
  const figures: FaultRunFigures = {
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
    expectedRecords: plan.length + collisions.length + invalidReuses.length + races.length * 2,
    duplicateRecords: entities.length - keys.size,
    inProgressRecords: entities.filter((e) => e.outcome === 'in-progress').length,
    maxAttempts: Math.max(...records.map((r) => r?.attempts ?? 0)),
    stormSeconds: stormMs / 1000,
    stormThrottled,
    departuresGivenUp: givenUp('employee-leaving'),
    mfaGivenUp: givenUp('mfa-enabled'),
    seconds,
  };
  return {
    plan,
    records,
    collisions,
    invalidReuses,
    races,
    deadLetters,
    entities,
    lost,
    figures,
  };
}

/**
 * The benchmark's fault run: its own Azurite (the test's comes from jest's global setup), the same
 * setup and driver as the test, and the figures.
 */
export async function measureFaultRun(options: FaultRunOptions): Promise<FaultRunFigures> {
  const azurite = await startAzuriteTable();
  process.env.TEST_AZURITE_CONNECTION_STRING = azurite.connectionString;
  try {
    const setup = await startFaultRunSetup();
    try {
      return (await runFaultRun(setup, options)).figures;
    } finally {
      await setup.stop();
    }
  } finally {
    await azurite.stop();
  }
}
