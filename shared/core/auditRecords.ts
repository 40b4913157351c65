import { ErrorCodes, OffboardingError } from './errors';
import { kindOfType, type EventKind } from './events';
import type { AuditLog, AuditRecord, RecordKey } from './ports';
import type { RouteName } from './routes';

/** How often a conditional write is retried after losing a race before giving up (retryably). */
const MAX_WRITE_RACES = 20;

/**
 * A decision about a record: the record to write (or undefined to leave it as it is) and a
 * verdict for the caller. Decisions are pure, so they can be retried after a lost race.
 */
export interface RecordDecision<V> {
  next?: AuditRecord;
  verdict: V;
}

/**
 * The one writer of audit records. Reads the record, lets `decide` work out the next version from
 * what is stored now, and writes it conditionally: created only if still absent, replaced only if
 * still at the version read. A lost race re-reads and decides again, so two runs never overwrite
 * each other's work unseen.
 */
export async function updateRecord<V>(
  audit: AuditLog,
  key: RecordKey,
  decide: (current: AuditRecord | undefined) => RecordDecision<V>,
): Promise<{ record: AuditRecord | undefined; verdict: V }> {
  const { value, verdict } = await readDecideWrite(
    {
      read: async () => {
        const stored = await audit.read(key);
        return stored && { value: stored.record, etag: stored.etag };
      },
      create: async (record) => {
        const stored = await audit.create(record);
        return stored && { value: stored.record, etag: stored.etag };
      },
      replace: async (record, etag) => {
        const stored = await audit.replace(record, etag);
        return stored && { value: stored.record, etag: stored.etag };
      },
    },
    decide,
    'audit record',
  );
  return { record: value, verdict };
}

/** A versioned value as a conditional store keeps it. */
export interface Versioned<T> {
  value: T;
  etag: string;
}

/**
 * Read, decide, write conditionally; a lost race re-reads and decides again. Shared by the audit
 * records and the person timelines (both Table entities with ETags).
 */
export async function readDecideWrite<T, V>(
  store: {
    read(): Promise<Versioned<T> | undefined>;
    create(value: T): Promise<Versioned<T> | undefined>;
    replace(value: T, etag: string): Promise<Versioned<T> | undefined>;
  },
  decide: (current: T | undefined) => { next?: T; verdict: V },
  what: string,
  /** What this caller's own read found (a version, or nothing): the first try decides on it. */
  known?: { found: Versioned<T> | undefined },
): Promise<{ value: T | undefined; verdict: V }> {
  for (let race = 0; race < MAX_WRITE_RACES; race++) {
    const stored = race === 0 && known !== undefined ? known.found : await store.read();
    const decision = decide(stored === undefined ? undefined : structuredClone(stored.value));
    if (decision.next === undefined) return { value: stored?.value, verdict: decision.verdict };
    const written =
      stored === undefined
        ? await store.create(decision.next)
        : await store.replace(decision.next, stored.etag);
    if (written !== undefined) return { value: written.value, verdict: decision.verdict };
  }
  throw new OffboardingError(
    ErrorCodes.AuditUnavailable,
    `The ${what} kept changing under this run (${MAX_WRITE_RACES} lost races); retrying later.`,
    { retryable: true },
  );
}

/** Counts a delivery that found the event already finished (or already waiting for its date). */
export function countDuplicate(record: AuditRecord, at: string): AuditRecord {
  return { ...record, duplicates: record.duplicates + 1, lastDuplicateAt: at };
}

/** The record of a message that is not a valid event (kept apart from every event's record). */
export function invalidMessageRecord(
  key: RecordKey,
  fields: { eventId: string; route: string; messageId: string; dryRun: boolean },
  error: OffboardingError,
  at: string,
): AuditRecord {
  return {
    ...key,
    eventId: fields.eventId,
    route: fields.route,
    requestedActions: [],
    actions: [],
    graphRequestIds: [],
    outcome: 'failed',
    errorCode: error.code,
    errorMessage: error.message,
    retryable: error.retryable,
    notes: [],
    dryRun: fields.dryRun,
    attempts: 1,
    duplicates: 0,
    messageId: fields.messageId,
    firstAttemptAt: at,
    lastAttemptAt: at,
  };
}

/** True while another run holds the event (its lease has not run out). */
export function isClaimedByOther(record: AuditRecord, runId: string, now: Date): boolean {
  return (
    record.claimedBy !== undefined &&
    record.claimedBy !== runId &&
    record.claimExpiresAt !== undefined &&
    Date.parse(record.claimExpiresAt) > now.getTime()
  );
}

/** A permanent outcome: every later delivery of the same message heads for the dead-letter queue. */
export function isPermanent(record: AuditRecord): boolean {
  return (
    record.outcome === 'refused' || (record.outcome === 'failed' && record.retryable === false)
  );
}

export { isFinal } from './lifecycle';

/** The error a permanent record stands for. */
export function errorOf(record: AuditRecord): OffboardingError {
  const code = (record.errorCode ?? ErrorCodes.Unexpected) as OffboardingError['code'];
  return new OffboardingError(code, record.errorMessage ?? 'Failed earlier.', {
    retryable: record.retryable ?? false,
  });
}

/**
 * The record an operator means by an event id: the latest record of a valid event with that id, or
 * else the latest record of an invalid message that carried it (`findByEventId` lists them all);
 * on one route when it is given.
 */
export async function latestRecordFor(
  audit: AuditLog,
  eventId: string,
  route?: RouteName,
): Promise<AuditRecord | undefined> {
  // An id reused on another route (another sender's event) has a record of its own there.
  const records = (await audit.findByEventId(eventId)).filter(
    (r) => route === undefined || r.route === route,
  );
  const newestFirst = records.sort((a, b) => b.lastAttemptAt.localeCompare(a.lastAttemptAt));
  return newestFirst.find((r) => r.contentDigest !== 'invalid') ?? newestFirst[0];
}

/**
 * A user's records, found by object id and by UPN (a departure given by UPN that is running now
 * has no object id on its record yet, and must not be missed), each once.
 */
export async function historyOf(
  audit: AuditLog,
  user: { id: string; userPrincipalName: string },
): Promise<AuditRecord[]> {
  const found = [
    ...(await audit.findByUser(user.id)),
    ...(await audit.findByUser(user.userPrincipalName)),
  ].map((stored) => stored.record);
  return found.filter(
    (record, i) =>
      found.findIndex(
        (other) =>
          other.identityKey === record.identityKey && other.contentDigest === record.contentDigest,
      ) === i,
  );
}

/** A record of an event of this kind on the departures route. */
export function isKind(record: AuditRecord, kind: EventKind): boolean {
  return record.route === 'employeeLeaving' && kindOfType(record.eventType ?? '') === kind;
}
