import type { LogLine, ReadLogLine } from '../shared/adapters/immutableAuditLog';
import { revocationDueAt, revocationLatencyMs } from '../shared/core/accessCutoff';
import { describeFinding, type SignInWatch } from '../shared/core/signInWatch';
import { isFinal } from '../shared/core/auditRecords';
import { ErrorCodes } from '../shared/core/errors';
import { kindOfType } from '../shared/core/events';
import type { AuditRecord, Outcome, RecordKey } from '../shared/core/ports';
import { differingFields } from './auditVerify';
import { buildReport, type Report } from './report';

/**
 * What `offboard report --html` shows, as data: the figures of `offboard report`, per day, the
 * distribution of the time to revocation, and every departure with its immutable log line. The
 * page (reportHtml.ts) only draws this; the tests check this and the page against each other.
 */

/** Every outcome, in the order the charts stack and the legend lists them. */
export const OUTCOME_ORDER = [
  'succeeded',
  'failed',
  'refused',
  'held',
  'discarded',
  'superseded',
  'delayed',
  'scheduled',
  'cancelled',
  'dry-run',
  'in-progress',
] as const satisfies readonly Outcome[];
// Fails to compile when an outcome is added to ports.ts and not here.
const everyOutcomeOrdered: [Exclude<Outcome, (typeof OUTCOME_ORDER)[number]>] extends [never]
  ? true
  : never = true;
void everyOutcomeOrdered;

/** One UTC day of the window (records counted on the day of their last attempt). */
export interface DayFigures {
  /** YYYY-MM-DD (UTC). */
  day: string;
  byOutcome: Partial<Record<Outcome, number>>;
  /** Last attempt answered 429 by Graph (a retry is due or was made). */
  throttled: number;
  /** Waiting for the write budget or another run's claim. */
  deferred: number;
  /** Failed permanently: on the dead-letter queue with its reason. */
  deadLettered: number;
  /** Records that tripped the guardrail (on the day they were held). */
  guardrailTrips: number;
}

/** A bar of the time-to-revocation distribution: `upToSeconds` inclusive, absent for the last. */
export interface LatencyBucket {
  label: string;
  upToSeconds?: number;
  count: number;
}

/** The bounds of the distribution's bars: CAE's 15 minutes and the token hour are among them. */
const LATENCY_BOUNDS: readonly [string, number | undefined][] = [
  ['≤ 10 s', 10],
  ['≤ 30 s', 30],
  ['≤ 1 min', 60],
  ['≤ 5 min', 300],
  ['≤ 15 min', 900],
  ['≤ 1 h', 3600],
  ['> 1 h', undefined],
];

/** Where a final record is in the immutable log, and whether the line says the same. */
export interface LogEntryRef {
  blob: string;
  line: number;
  appendedAt: string;
  /** Fields in which the table differs from the line (empty: they agree). */
  differs: string[];
}

export type LogStatus = 'matches' | 'differs' | 'missing' | 'not final';

export interface DepartureRow {
  eventId: string;
  /** The UPN Graph resolved, else the user as the event gave it. */
  user: string;
  outcome: Outcome;
  errorCode?: string;
  /** The event's own `time` (the producer's word). */
  eventTime?: string;
  /** When this app first took the event. */
  firstAttemptAt: string;
  leaveDate?: string;
  /** Due: the later of the first attempt and the leave date. */
  dueAt?: string;
  /** The verified revocation (signInSessionsValidFrom read back). */
  revokedAt?: string;
  secondsToRevocation?: number;
  caeAppsBy?: string;
  otherAppsBy?: string;
  logStatus: LogStatus;
  log?: LogEntryRef;
  /** The sign-in watch (when it was on for this departure): what its checks found so far. */
  signInWatch?: string;
}

export interface GuardrailTrip {
  heldAt: string;
  eventId: string;
  route?: string;
  user: string;
}

export interface Evidence {
  report: Report;
  days: DayFigures[];
  latencyBuckets: LatencyBucket[];
  departures: DepartureRow[];
  guardrailTrips: GuardrailTrip[];
  log: { blobs: number; lines: number; unreadable: number };
}

const DAY_MS = 86_400_000;
const dayOf = (iso: string) => iso.slice(0, 10);
const isoOrUndefined = (ms: number | undefined) =>
  ms === undefined ? undefined : new Date(ms).toISOString();
const keyOf = (key: RecordKey) => `${key.identityKey}\u0000${key.contentDigest}`;

/** Every UTC day from `since` to `until`, both included. */
function daysOf(since: Date, until: Date): string[] {
  const days: string[] = [];
  for (let at = Date.parse(dayOf(since.toISOString())); at <= until.getTime(); at += DAY_MS)
    days.push(dayOf(new Date(at).toISOString()));
  return days;
}

function dayFigures(records: AuditRecord[], since: Date, until: Date): DayFigures[] {
  const days = new Map<string, DayFigures>(
    daysOf(since, until).map((day) => [
      day,
      { day, byOutcome: {}, throttled: 0, deferred: 0, deadLettered: 0, guardrailTrips: 0 },
    ]),
  );
  for (const record of records) {
    const figures = days.get(dayOf(record.lastAttemptAt));
    if (figures === undefined) continue;
    figures.byOutcome[record.outcome] = (figures.byOutcome[record.outcome] ?? 0) + 1;
    if (record.errorCode === ErrorCodes.Throttled) figures.throttled += 1;
    if (record.errorCode === ErrorCodes.Deferred) figures.deferred += 1;
    if (record.outcome === 'failed' && record.retryable === false) figures.deadLettered += 1;
  }
  for (const trip of tripsOf(records)) {
    const figures = days.get(dayOf(trip.heldAt));
    if (figures !== undefined) figures.guardrailTrips += 1;
  }
  return [...days.values()];
}

function latencyBuckets(records: AuditRecord[]): LatencyBucket[] {
  const buckets = LATENCY_BOUNDS.map(([label, upToSeconds]) => ({
    label,
    ...(upToSeconds === undefined ? {} : { upToSeconds }),
    count: 0,
  }));
  for (const record of records) {
    const ms = revocationLatencyMs(record);
    if (ms === undefined) continue;
    // The last bar has no bound: every measured record finds one.
    const bucket = buckets.find((b) => b.upToSeconds === undefined || ms <= b.upToSeconds * 1000);
    if (bucket !== undefined) bucket.count += 1;
  }
  return buckets;
}

function tripsOf(records: AuditRecord[]): GuardrailTrip[] {
  return records
    .flatMap((r) =>
      r.guardrail?.tripped === true && r.guardrail.heldAt !== undefined
        ? [
            {
              heldAt: r.guardrail.heldAt,
              eventId: r.eventId,
              ...(r.route === undefined ? {} : { route: r.route }),
              user: r.userPrincipalName ?? r.user ?? '',
            },
          ]
        : [],
    )
    .sort((a, b) => a.heldAt.localeCompare(b.heldAt));
}

/** The latest readable line of each key (lines in append order; blobs read in name order). */
function latestLines(
  log: ReadLogLine[],
): Map<string, { blob: string; line: number; entry: LogLine }> {
  const latest = new Map<string, { blob: string; line: number; entry: LogLine }>();
  for (const { blob, line, entry } of log) {
    if ('unreadable' in entry) continue;
    const known = latest.get(keyOf(entry));
    if (known === undefined || known.entry.appendedAt <= entry.appendedAt)
      latest.set(keyOf(entry), { blob, line, entry });
  }
  return latest;
}

function departureRows(records: AuditRecord[], log: ReadLogLine[]): DepartureRow[] {
  const latest = latestLines(log);
  return records
    .filter((r) => r.eventType !== undefined && kindOfType(r.eventType) === 'employee.leaving')
    .map((r): DepartureRow => {
      const found = latest.get(keyOf(r));
      const ref: LogEntryRef | undefined =
        found === undefined
          ? undefined
          : {
              blob: found.blob,
              line: found.line,
              appendedAt: found.entry.appendedAt,
              differs: differingFields(r, found.entry.record),
            };
      const logStatus: LogStatus = !isFinal(r)
        ? 'not final'
        : ref === undefined
          ? 'missing'
          : ref.differs.length === 0
            ? 'matches'
            : 'differs';
      const ms = revocationLatencyMs(r);
      const verified = r.verification?.verified === true;
      const row: DepartureRow = {
        eventId: r.eventId,
        user: r.userPrincipalName ?? r.user ?? '',
        outcome: r.outcome,
        firstAttemptAt: r.firstAttemptAt,
        logStatus,
      };
      if (r.errorCode !== undefined) row.errorCode = r.errorCode;
      if (r.eventTime !== undefined) row.eventTime = r.eventTime;
      if (r.effectiveAt !== undefined) row.leaveDate = r.effectiveAt;
      const dueAt = isoOrUndefined(revocationDueAt(r));
      if (dueAt !== undefined) row.dueAt = dueAt;
      if (verified && r.verification?.signInSessionsValidFrom !== undefined)
        row.revokedAt = r.verification.signInSessionsValidFrom;
      if (ms !== undefined) row.secondsToRevocation = Math.round(ms / 1000);
      if (r.accessCutoff?.caeAppsBy !== undefined) row.caeAppsBy = r.accessCutoff.caeAppsBy;
      if (r.accessCutoff?.otherAppsBy !== undefined) row.otherAppsBy = r.accessCutoff.otherAppsBy;
      if (ref !== undefined) row.log = ref;
      if (r.signInWatch !== undefined) row.signInWatch = watchSummary(r.signInWatch);
      return row;
    })
    .sort(
      (a, b) =>
        a.firstAttemptAt.localeCompare(b.firstAttemptAt) || a.eventId.localeCompare(b.eventId),
    );
}

/** A departure's sign-in watch in a few words: the incident if any check found one, else the latest. */
function watchSummary(watch: SignInWatch): string {
  if (watch.notScheduled !== undefined) return 'not scheduled';
  const found = watch.checks.flatMap((c) => (c.result === undefined ? [] : [c.result]));
  const incident = found.find((f) => f.verdict === 'signin-after-cutoff');
  const next = watch.checks.find((c) => c.result === undefined);
  const latest = incident ?? found.at(-1);
  const pending = next === undefined ? '' : `; next check ${next.dueAt}`;
  return latest === undefined ? `pending${pending}` : `${describeFinding(latest)}${pending}`;
}

/** The evidence of the window: the audit table's records and the log lines read for it. */
export function buildEvidence(
  records: AuditRecord[],
  log: ReadLogLine[],
  blobs: number,
  since: Date,
  until: Date,
): Evidence {
  return {
    report: buildReport(records, since, until),
    days: dayFigures(records, since, until),
    latencyBuckets: latencyBuckets(records),
    departures: departureRows(records, log),
    guardrailTrips: tripsOf(records),
    log: {
      blobs,
      lines: log.filter((l) => !('unreadable' in l.entry)).length,
      unreadable: log.filter((l) => 'unreadable' in l.entry).length,
    },
  };
}
