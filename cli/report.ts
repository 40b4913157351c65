import { InvalidArgumentError } from 'commander';
import { revocationLatencyMs } from '../shared/core/accessCutoff';
import { ErrorCodes } from '../shared/core/errors';
import type { AuditLog, AuditRecord } from '../shared/core/ports';
import { formatTable } from './output';

/** `offboard report` without --since. */
export const DEFAULT_SINCE = '7d';

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const SINCE_RULE = 'a duration back from now (30m, 24h, 7d) or a date/time (2026-11-23T00:00:00Z)';

/** --since: `<n>m|h|d` back from `now`, or an absolute date/time not in the future. */
export function parseSince(raw: string, now: Date = new Date()): Date {
  const text = raw.trim();
  const duration = /^(\d{1,5})([mhd])$/.exec(text);
  if (duration !== null) {
    const [, amount, unit] = duration as unknown as [string, string, keyof typeof UNIT_MS];
    return new Date(now.getTime() - Number(amount) * UNIT_MS[unit]);
  }
  // A bare number is ambiguous (days? a year?): only a date that names its shape is taken.
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? new Date(text) : new Date(Number.NaN);
  if (Number.isNaN(at.getTime())) throw new InvalidArgumentError(`It must be ${SINCE_RULE}.`);
  if (at.getTime() > now.getTime()) throw new InvalidArgumentError('It must not be in the future.');
  return at;
}

/** Latency in seconds (nearest-rank percentiles); absent figures when no record has both times. */
export interface LatencySummary {
  count: number;
  p50Seconds?: number;
  p95Seconds?: number;
  maxSeconds?: number;
}

/** What `offboard report --json` prints (one object). */
export interface Report {
  since: string;
  until: string;
  /** Records whose last attempt is in the window (the audit's lastAttemptAt). */
  records: number;
  byOutcome: Record<string, number>;
  byErrorCode: Record<string, number>;
  /** From the event's `time` to the verified revocation (signInSessionsValidFrom). */
  latency: LatencySummary;
  /** Transient failures a retry is scheduled or due for: failed + retryable, and delayed. */
  openFailures: number;
  /**
   * Of those, departures past their due time by DEPARTURE_OVERDUE_MINUTES that are still being
   * retried (Graph throttling or down): the "departure delayed" alert fired for each.
   */
  delayed: number;
  refused: number;
  /** Waiting: for the leave date (scheduled), or for the write budget or another run (Deferred). */
  held: { scheduled: number; deferred: number };
  /** Deliveries that found their event already done, summed over the records. */
  duplicateDeliveries: number;
  /**
   * The blast-radius guardrail: trips (the records that tripped it), events still held for an
   * operator, and what operators released and discarded, in the window.
   */
  guardrail: { trips: number; held: number; released: number; discarded: number };
}

/** Nearest-rank percentile of an ascending list: the smallest value with q of the list at or below it. */
function percentile(sorted: number[], q: number): number | undefined {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

const seconds = (ms: number | undefined) =>
  ms === undefined ? undefined : Math.round(ms / 100) / 10;

function tally(values: Iterable<string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  // Largest first, then by name: the same records always print the same way.
  return Object.fromEntries(
    Object.entries(counts).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0)),
  );
}

export function buildReport(records: AuditRecord[], since: Date, until: Date): Report {
  const latencies = records
    .map(revocationLatencyMs)
    .filter((ms): ms is number => ms !== undefined)
    .sort((a, b) => a - b);
  const latency: LatencySummary = { count: latencies.length };
  if (latencies.length > 0) {
    latency.p50Seconds = seconds(percentile(latencies, 0.5));
    latency.p95Seconds = seconds(percentile(latencies, 0.95));
    latency.maxSeconds = seconds(latencies.at(-1));
  }
  return {
    since: since.toISOString(),
    until: until.toISOString(),
    records: records.length,
    byOutcome: tally(records.map((r) => r.outcome)),
    byErrorCode: tally(records.flatMap((r) => (r.errorCode === undefined ? [] : [r.errorCode]))),
    latency,
    openFailures: records.filter(
      (r) => (r.outcome === 'failed' && r.retryable === true) || r.outcome === 'delayed',
    ).length,
    delayed: records.filter((r) => r.outcome === 'delayed').length,
    refused: records.filter((r) => r.outcome === 'refused').length,
    held: {
      // A leave-date run that waits for budget keeps `scheduled`: it counts as deferred only.
      scheduled: records.filter(
        (r) => r.outcome === 'scheduled' && r.errorCode !== ErrorCodes.Deferred,
      ).length,
      deferred: records.filter((r) => r.errorCode === ErrorCodes.Deferred).length,
    },
    duplicateDeliveries: records.reduce((sum, r) => sum + r.duplicates, 0),
    guardrail: {
      trips: records.filter((r) => r.guardrail?.tripped === true).length,
      held: records.filter((r) => r.outcome === 'held' && r.guardrail?.release === undefined)
        .length,
      released: records.filter((r) => r.guardrail?.release !== undefined).length,
      discarded: records.filter((r) => r.outcome === 'discarded').length,
    },
  };
}

/** Reads the window from the audit table (one bounded query through the port) and sums it up. */
export async function readReport(audit: AuditLog, since: Date, now: Date): Promise<Report> {
  return buildReport(await audit.listSince(since), since, now);
}

const countTable = (label: string, counts: Record<string, number>) =>
  Object.keys(counts).length === 0
    ? `${label}: none`
    : formatTable(
        [label, 'count'],
        Object.entries(counts).map(([key, n]) => [key, String(n)]),
      );

/** The report for a terminal: every value that came from the audit goes through formatTable. */
export function formatReport(report: Report): string {
  const { latency, held } = report;
  const latencyLine =
    latency.count === 0
      ? 'none with both an event time and a verified revocation'
      : `p50 ${latency.p50Seconds} s, p95 ${latency.p95Seconds} s, max ${latency.maxSeconds} s (${latency.count} events)`;
  return [
    `Offboarding report from ${report.since} to ${report.until}: ${report.records} audit record(s) last attempted in the window.`,
    '',
    countTable('outcome', report.byOutcome),
    '',
    countTable('error code', report.byErrorCode),
    '',
    formatTable(
      ['figure', 'value'],
      [
        ['event time to verified revocation', latencyLine],
        ['open failures (failed retryable, or delayed)', String(report.openFailures)],
        ['delayed departures (past due, still retrying)', String(report.delayed)],
        ['refused (protected accounts)', String(report.refused)],
        ['held for the leave date (scheduled)', String(held.scheduled)],
        ['held, waiting for budget or a claim (Deferred)', String(held.deferred)],
        ['duplicate deliveries', String(report.duplicateDeliveries)],
        ['guardrail trips', String(report.guardrail.trips)],
        [
          'held by the guardrail (offboard guardrail status)',
          `${report.guardrail.held} held, ${report.guardrail.released} released, ${report.guardrail.discarded} discarded`,
        ],
      ],
    ),
  ].join('\n');
}
