/**
 * The guardrail's optional share-of-tenant limit end to end: departures through the function
 * handlers (Service Bus stand-in, local runner, the real Graph client against the Graph stand-in,
 * which answers GET /users/$count, audit and guardrail records in Azurite). The share is set below
 * the count limit, so only the share can stop the feed; the tenant's enabled users are whatever
 * the stand-in holds when the first departure is counted.
 */
import { randomUUID } from 'node:crypto';
import { latestRecordFor } from '../../shared/core/auditRecords';
import type { AuditRecord } from '../../shared/core/ports';
import { startPipeline, type Pipeline } from '../support/runner';
import { recordsSettled } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

/** The count limit: above the whole feed, so without the share every departure would run. */
const COUNT_LIMIT = 50;
const PERCENT = 25;
const FEED = 40;

let world: World;
let pipeline: Pipeline | undefined;

beforeAll(async () => {
  world = await startWorld({
    GUARDRAIL_DEPARTURES_PER_WINDOW: String(COUNT_LIMIT),
    GUARDRAIL_DEPARTURES_MAX_PERCENT: String(PERCENT),
    // A guardrail table of its own: a trip latches, and other files' worlds count departures too.
    GUARDRAIL_TABLE_NAME: `GuardrailShare${randomUUID().replace(/-/g, '').slice(0, 16)}`,
  });
});
afterAll(async () => {
  await pipeline?.stop();
  await world.stop();
});

const record = (id: string) => latestRecordFor(world.runtime.audit, id);

const settledAll = (ids: string[], done: (r: AuditRecord) => boolean, what: string) =>
  recordsSettled(world.runtime.audit, ids, done, what);

const writesTo = (userId: string) =>
  world.graph.writes().filter((w) => w.decodedPath.includes(userId));
const countRequests = () => world.graph.requests.filter((r) => r.operation === 'countUsers');
const enabledInStandIn = () => world.graph.users().filter((u) => u.accountEnabled).length;

/** New users in the stand-in and a departure event for each (not sent yet). */
function departures(n: number, ticket: string) {
  return Array.from({ length: n }, (_, i) => {
    const user = world.newUser();
    const event = cloudEvent('employee.leaving', { user: user.upn, ticket: `${ticket}-${i}` });
    return { id: event.id as string, userId: user.id, event };
  });
}

describe('a share of the tenant below the count limit', () => {
  let feed: ReturnType<typeof departures>;
  let enabledUsers: number;
  let share: number;

  beforeAll(async () => {
    world.graph.reset();
    feed = departures(FEED, 'HR-SHARE');
    // The tenant as Graph will count it at the first departure: seeded users plus the feed's.
    enabledUsers = enabledInStandIn();
    share = Math.floor((enabledUsers * PERCENT) / 100);
    pipeline = startPipeline(world);
    for (const f of feed) await pipeline.send('employee-leaving', f.event);
    await settledAll(
      feed.map((f) => f.id),
      (r) => r.outcome === 'succeeded' || r.outcome === 'held',
      'every departure of the feed to be executed or held',
    );
  }, 120_000);

  it('is a real test: the share is the lower limit, and below the feed', () => {
    expect(share).toBeGreaterThanOrEqual(1);
    expect(share).toBeLessThan(COUNT_LIMIT);
    expect(share).toBeLessThan(FEED);
  });

  it('executes exactly the share and holds the rest with zero Graph writes, naming the share', async () => {
    const records = await Promise.all(feed.map((f) => record(f.id)));
    const succeeded = records.filter((r) => r?.outcome === 'succeeded');
    const held = records.filter((r) => r?.outcome === 'held');
    expect(succeeded).toHaveLength(share);
    expect(held).toHaveLength(FEED - share);

    for (const r of held) {
      const user = feed.find((f) => f.id === r?.eventId);
      expect(writesTo(user?.userId ?? 'missing')).toEqual([]);
      expect(world.graph.getUser(user?.userId ?? '')?.accountEnabled).toBe(true);
      expect(r?.actions.every((a) => a.status === 'not-attempted')).toBe(true);
      expect(r?.guardrail?.heldReason).toMatch(/guardrail for departures tripped/);
      expect(r?.guardrail?.heldReason).toContain(
        `(limit ${share}: ${PERCENT} % of ${enabledUsers} enabled users)`,
      );
    }
    for (const r of succeeded) {
      const user = feed.find((f) => f.id === r?.eventId);
      expect(world.graph.getUser(user?.userId ?? '')?.accountEnabled).toBe(false);
    }
    const alerts = JSON.stringify(pipeline?.logs).match(/GuardrailTripped/g) ?? [];
    expect(alerts).toHaveLength(1);
  });

  it('read the count of enabled users once for the instance, as an advanced query', () => {
    const reads = countRequests();
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({
      method: 'GET',
      path: '/v1.0/users/$count',
      status: 200,
      query: { $filter: 'accountEnabled eq true' },
    });
    expect(reads[0]?.headers.consistencylevel).toBe('eventual');
  });
});

describe('when Graph cannot count the tenant', () => {
  it('a new instance fails the departures retryable with nothing written, and holds them once the count is back', async () => {
    await pipeline?.stop();
    world.graph.reset();
    // A new instance: nothing cached, so its first departure must read the count.
    const instance = world.runtimeWith({});
    const outage = world.graph.injectFault({
      operation: 'countUsers',
      status: 503,
      times: Infinity,
    });
    pipeline = startPipeline(world, instance);
    const feed = departures(3, 'HR-OUTAGE');
    for (const f of feed) await pipeline.send('employee-leaving', f.event);
    const ids = feed.map((f) => f.id);
    // Failed and retried at least once: a failed read is not cached, every attempt asks again.
    const failed = await settledAll(
      ids,
      (r) => r.outcome === 'failed' && r.attempts >= 2,
      'the departures to fail and be retried while the count is unavailable',
    );
    for (const r of failed) {
      expect(r.retryable).toBe(true);
      expect(r.errorCode).toBe('GraphUnavailable');
      expect(r.errorMessage).toMatch(/503/);
      expect(r.guardrail?.admittedAt).toBeUndefined();
      expect(r.actions.every((a) => a.status === 'not-attempted')).toBe(true);
    }
    expect(world.graph.writes()).toEqual([]);
    for (const f of feed) expect(world.graph.getUser(f.userId)?.accountEnabled).toBe(true);
    // Asked again after the failure (departures in flight together share one read).
    expect(outage.hits).toBeGreaterThanOrEqual(2);
    expect(countRequests().every((r) => r.status === 503)).toBe(true);

    // The count is back: the retries are counted against the route, which the share tripped
    // above, so they are held; still nothing written, and this instance read the count once.
    outage.remove();
    const held = await settledAll(
      ids,
      (r) => r.outcome === 'held',
      'the retried departures to be held by the standing trip',
    );
    for (const r of held) expect(r.guardrail?.heldReason).toContain(`${PERCENT} % of`);
    expect(world.graph.writes()).toEqual([]);
    expect(countRequests().filter((r) => r.status === 200)).toHaveLength(1);
  }, 120_000);
});
