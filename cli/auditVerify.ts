import { DefaultAzureCredential } from '@azure/identity';
import { boundedCredential } from '../shared/adapters/deadline';
import {
  openImmutableAuditLog,
  type ImmutableAuditLogReader,
  type LogLine,
  type ReadLogLine,
} from '../shared/adapters/immutableAuditLog';
import type { ImmutableLogConfig } from '../shared/app/config';
import { isFinal } from '../shared/core/auditRecords';
import type { AuditRecord, RecordKey } from '../shared/core/ports';
import type { RuntimeFactory } from './commands';
import { ExitCodes } from './exitCodes';
import type { Io } from './io';
import { formatTable, toJson } from './output';
import { DEFAULT_SINCE, parseSince } from './report';

/**
 * The only fields the app changes in a final record after its last log line: a duplicate delivery
 * of a final event counts itself in the table (`duplicates`, `lastDuplicateAt`) before it appends
 * its copy, and a delivery that could not append may never come back. They are not compared for
 * equality, but they may only move forward from the line (more duplicates, a later last one, never
 * in the future): anything else is a finding. Every other field is compared.
 */
export const FIELDS_NOT_COMPARED = ['duplicates', 'lastDuplicateAt'] as const;

/**
 * A record changed this recently may still be on its way to the log (the append follows the table
 * write, and a failed append is retried with the delivery): it is listed as pending, not as a
 * finding. Recently by the record's own times (a time in the future is a finding of its own) and
 * by the table's modification time, which no writer sets: an edit can look in flight for this
 * long at most, and a change that never reaches the log is a finding once it has passed.
 */
export const IN_FLIGHT_MS = 5 * 60_000;

/** Times a record states about the past; later than the end of the check (plus this) is a finding. */
const CLOCK_TOLERANCE_MS = 5 * 60_000;

export interface KeyRef extends RecordKey {
  eventId: string;
}

export interface VerifyFindings {
  /** Final in the table, and the log's latest line for the key says something else. */
  differs: (KeyRef & { fields: string[]; loggedAt: string })[];
  /** Final in the table, no line in the log (in the period read). */
  missingFromLog: (KeyRef & { outcome: string; lastAttemptAt: string })[];
  /** In the log, no longer in the table. */
  goneFromTable: (KeyRef & { loggedOutcome: string; loggedAt: string })[];
  /** In the log as final, in the table as not final (a release or replay still running, or an edit). */
  noLongerFinal: (KeyRef & { outcome: string; loggedOutcome: string; loggedAt: string })[];
  /**
   * Two lines of one key, one after the other, that differ although no run came between them
   * (same outcome, last attempt and attempts): the table was changed and a duplicate delivery
   * appended the changed record. The earlier line is the evidence.
   */
  changedWithoutRun: (KeyRef & {
    fields: string[];
    loggedAt: string;
    previouslyLoggedAt: string;
  })[];
  /** Lines that are not log lines of a known format. */
  unreadable: { blob: string; line: number; reason: string }[];
  /** A time the record (or its log line) states about the past that is in the future. */
  futureTimes: (KeyRef & { fields: string[] })[];
  /** `duplicates` or `lastDuplicateAt` lower in the table than on the log line (they only grow). */
  wentBack: (KeyRef & { fields: string[]; loggedAt: string })[];
}

export interface VerifyReport extends VerifyFindings {
  since: string;
  until: string;
  /** Final table records compared with the log. */
  finalRecords: number;
  logLines: number;
  blobs: number;
  /**
   * Differences or absences of records the table changed within IN_FLIGHT_MS of the end of the
   * check (its own modification time): not findings (yet).
   */
  pending: (KeyRef & { finding: 'differs' | 'missingFromLog'; changedAt: string })[];
  clean: boolean;
}

const keyOf = (key: RecordKey) => `${key.identityKey}\u0000${key.contentDigest}`;
const refOf = (record: AuditRecord): KeyRef => ({
  identityKey: record.identityKey,
  contentDigest: record.contentDigest,
  eventId: record.eventId,
});

/** JSON with object keys sorted, so equal values print equally whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

/**
 * A record as the comparison sees it: as JSON (undefined fields absent), without the fields not
 * compared, and the object id lower-cased (a GUID: the table keeps it lower-cased for lookups).
 */
function comparable(record: AuditRecord): Map<string, string> {
  const fields = new Map<string, string>();
  for (const [name, value] of Object.entries(record)) {
    if (value === undefined || (FIELDS_NOT_COMPARED as readonly string[]).includes(name)) continue;
    fields.set(
      name,
      canonical(name === 'objectId' && typeof value === 'string' ? value.toLowerCase() : value),
    );
  }
  return fields;
}

/** The fields in which two records differ (sorted), ignoring FIELDS_NOT_COMPARED. */
export function differingFields(table: AuditRecord, logged: AuditRecord): string[] {
  const a = comparable(table);
  const b = comparable(logged);
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((name) => a.get(name) !== b.get(name)).sort();
}

/** The times a record states about the past (a duplicate, an attempt, a hold or a decision). */
function pastTimes(record: AuditRecord): Array<[string, string | undefined]> {
  const g = record.guardrail;
  return [
    ['firstAttemptAt', record.firstAttemptAt],
    ['lastAttemptAt', record.lastAttemptAt],
    ['lastDuplicateAt', record.lastDuplicateAt],
    ['guardrail.admittedAt', g?.admittedAt],
    ['guardrail.heldAt', g?.heldAt],
    ['guardrail.release.at', g?.release?.at],
    ['guardrail.discard.at', g?.discard?.at],
  ];
}

/** The fields not compared that went back from the line (they only ever grow). */
function wentBack(table: AuditRecord, logged: AuditRecord): string[] {
  const fields: string[] = [];
  if ((table.duplicates ?? 0) < (logged.duplicates ?? 0)) fields.push('duplicates');
  if (
    logged.lastDuplicateAt !== undefined &&
    (table.lastDuplicateAt === undefined || table.lastDuplicateAt < logged.lastDuplicateAt)
  )
    fields.push('lastDuplicateAt');
  return fields;
}

/**
 * Compares the table with the log. `tableRecords`: every record of the period, and the record of
 * every key the log holds (read by key, so a record last attempted before the period is found).
 * `log`: the lines read. Each final table record is compared with the latest line of its key.
 */
export function compareAuditWithLog(input: {
  tableRecords: AuditRecord[];
  log: ReadLogLine[];
  since: Date;
  until: Date;
  /** Blobs read (for the report). */
  blobs?: number;
  /**
   * When the table last changed a record (its own clock), by key; a record without one is never
   * in flight (the check fails closed).
   */
  modifiedAt?: ReadonlyMap<string, string>;
}): VerifyReport {
  const history = new Map<string, LogLine[]>();
  const unreadable: VerifyFindings['unreadable'] = [];
  let logLines = 0;
  for (const { blob, line, entry } of input.log) {
    if ('unreadable' in entry) {
      unreadable.push({ blob, line, reason: entry.unreadable });
      continue;
    }
    logLines += 1;
    const key = keyOf(entry);
    history.set(key, [...(history.get(key) ?? []), entry]);
  }
  // Oldest first by append time; equal times keep the order read (blobs in name order). Stable.
  for (const lines of history.values())
    lines.sort((a, b) => a.appendedAt.localeCompare(b.appendedAt));
  const latest = new Map<string, LogLine>();
  for (const [key, lines] of history) latest.set(key, lines[lines.length - 1] as LogLine);
  const changedWithoutRun: VerifyFindings['changedWithoutRun'] = [];
  for (const lines of history.values())
    for (let i = 1; i < lines.length; i++) {
      const before = (lines[i - 1] as LogLine).record;
      const after = (lines[i] as LogLine).record;
      const sameRun =
        before.outcome === after.outcome &&
        before.lastAttemptAt === after.lastAttemptAt &&
        before.attempts === after.attempts;
      const fields = sameRun ? differingFields(after, before) : [];
      if (fields.length > 0)
        changedWithoutRun.push({
          ...refOf(after),
          fields,
          loggedAt: (lines[i] as LogLine).appendedAt,
          previouslyLoggedAt: (lines[i - 1] as LogLine).appendedAt,
        });
    }

  const table = new Map<string, AuditRecord>();
  for (const record of input.tableRecords) table.set(keyOf(record), record);

  const report: VerifyReport = {
    since: input.since.toISOString(),
    until: input.until.toISOString(),
    finalRecords: 0,
    logLines,
    blobs: input.blobs ?? new Set(input.log.map((l) => l.blob)).size,
    differs: [],
    missingFromLog: [],
    goneFromTable: [],
    noLongerFinal: [],
    changedWithoutRun,
    unreadable,
    futureTimes: [],
    wentBack: [],
    pending: [],
    clean: true,
  };
  const latestAllowed = input.until.getTime() + CLOCK_TOLERANCE_MS;
  const recent = (at: string) => input.until.getTime() - Date.parse(at) < IN_FLIGHT_MS;
  const changedAt = (record: AuditRecord) => {
    // The times a run sets when it changes a record (an admission or a hold never comes later).
    const own = [
      record.lastAttemptAt,
      record.lastDuplicateAt,
      record.guardrail?.release?.at,
      record.guardrail?.discard?.at,
    ]
      .filter((at): at is string => at !== undefined && Date.parse(at) <= latestAllowed)
      .sort()
      .at(-1);
    const table = input.modifiedAt?.get(keyOf(record));
    return own === undefined || table === undefined || table > own ? own : table;
  };
  const inFlight = (record: AuditRecord) => {
    const table = input.modifiedAt?.get(keyOf(record));
    const own = changedAt(record);
    return own !== undefined && recent(own) && (table === undefined || recent(table));
  };

  for (const line of latest.values()) {
    if (Date.parse(line.appendedAt) > latestAllowed)
      report.futureTimes.push({ ...refOf(line.record), fields: ['log line appendedAt'] });
  }
  for (const [key, record] of table) {
    if (!isFinal(record)) continue;
    report.finalRecords += 1;
    const future = pastTimes(record)
      .filter(([, at]) => at !== undefined && Date.parse(at) > latestAllowed)
      .map(([field]) => field);
    if (future.length > 0) report.futureTimes.push({ ...refOf(record), fields: future });
    const line = latest.get(key);
    if (line === undefined) {
      if (inFlight(record))
        report.pending.push({
          ...refOf(record),
          finding: 'missingFromLog',
          changedAt: changedAt(record) ?? '',
        });
      else
        report.missingFromLog.push({
          ...refOf(record),
          outcome: record.outcome,
          lastAttemptAt: record.lastAttemptAt,
        });
      continue;
    }
    const back = wentBack(record, line.record);
    if (back.length > 0)
      report.wentBack.push({ ...refOf(record), fields: back, loggedAt: line.appendedAt });
    const fields = differingFields(record, line.record);
    if (fields.length === 0) continue;
    if (inFlight(record) && line.appendedAt < (changedAt(record) ?? ''))
      report.pending.push({
        ...refOf(record),
        finding: 'differs',
        changedAt: changedAt(record) ?? '',
      });
    else report.differs.push({ ...refOf(record), fields, loggedAt: line.appendedAt });
  }

  for (const [key, line] of latest) {
    const record = table.get(key);
    const logged = { ...refOf(line.record), loggedAt: line.appendedAt };
    if (record === undefined)
      report.goneFromTable.push({ ...logged, loggedOutcome: line.record.outcome });
    else if (!isFinal(record))
      report.noLongerFinal.push({
        ...logged,
        outcome: record.outcome,
        loggedOutcome: line.record.outcome,
      });
  }

  const byKey = (a: KeyRef, b: KeyRef) => keyOf(a).localeCompare(keyOf(b));
  for (const list of [report.differs, report.missingFromLog, report.goneFromTable])
    list.sort(byKey);
  report.changedWithoutRun.sort(byKey);
  report.noLongerFinal.sort(byKey);
  report.futureTimes.sort(byKey);
  report.wentBack.sort(byKey);
  report.clean =
    report.differs.length === 0 &&
    report.missingFromLog.length === 0 &&
    report.goneFromTable.length === 0 &&
    report.noLongerFinal.length === 0 &&
    report.changedWithoutRun.length === 0 &&
    report.futureTimes.length === 0 &&
    report.wentBack.length === 0 &&
    report.unreadable.length === 0;
  return report;
}

/** Read the log from an hour before `since`: an append may be stamped by another clock. */
export const CLOCK_SLACK_MS = 3_600_000;

/** Reads both sides of the period and compares them. */
export async function verifyAudit(
  audit: {
    listSince(since: Date): Promise<AuditRecord[]>;
    read(key: RecordKey): Promise<{ record: AuditRecord; modifiedAt?: string } | undefined>;
  },
  log: Pick<ImmutableAuditLogReader, 'readBetween'>,
  since: Date,
  until: Date,
): Promise<VerifyReport> {
  const [records, read] = await Promise.all([
    audit.listSince(since),
    log.readBetween(new Date(since.getTime() - CLOCK_SLACK_MS), until),
  ]);
  // Keys the log holds whose records were last attempted before the period: read them by key.
  const known = new Set(records.map(keyOf));
  const others = new Map<string, RecordKey>();
  for (const { entry } of read.lines)
    if (!('unreadable' in entry) && !known.has(keyOf(entry))) others.set(keyOf(entry), entry);
  for (const key of others.values()) {
    const found = await audit.read({
      identityKey: key.identityKey,
      contentDigest: key.contentDigest,
    });
    if (found !== undefined) records.push(found.record);
  }
  const input = { tableRecords: records, log: read.lines, since, until, blobs: read.blobs.length };
  const first = compareAuditWithLog(input);
  // What differs or is missing may be in flight: the table's own modification time says.
  const candidates = [...first.differs, ...first.missingFromLog];
  if (candidates.length === 0) return first;
  const modifiedAt = new Map<string, string>();
  for (const key of candidates) {
    const found = await audit.read({
      identityKey: key.identityKey,
      contentDigest: key.contentDigest,
    });
    if (found?.modifiedAt !== undefined) modifiedAt.set(keyOf(key), found.modifiedAt);
  }
  return compareAuditWithLog({ ...input, modifiedAt });
}

export interface AuditVerifyOptions {
  since?: Date;
  json?: boolean;
}

/** Opens the log as the person running the command (Storage Blob Data Reader on the container). */
export type LogOpener = (
  config: ImmutableLogConfig,
) => Pick<ImmutableAuditLogReader, 'readBetween'>;

export const asOperator: LogOpener = (config) =>
  openImmutableAuditLog(
    config,
    config.connectionString === undefined
      ? boundedCredential(new DefaultAzureCredential(), 'your sign-in')
      : undefined,
  );

/** `offboard audit verify [--since T] [--json]`: exit 1 when anything is found. */
export async function auditVerifyCommand(
  options: AuditVerifyOptions,
  io: Io,
  runtime: RuntimeFactory,
  openLog: LogOpener = asOperator,
): Promise<number> {
  const until = new Date();
  const since = options.since ?? parseSince(DEFAULT_SINCE, until);
  const ops = runtime();
  let report: VerifyReport;
  try {
    report = await verifyAudit(ops.audit, openLog(ops.config.immutableLog), since, until);
  } finally {
    await ops.close();
  }
  io.stdout((options.json ? toJson(report) : formatVerifyReport(report)) + '\n');
  return report.clean ? ExitCodes.ok : ExitCodes.failed;
}

/** The report for a terminal: a summary line, then a table per kind of finding. */
export function formatVerifyReport(report: VerifyReport): string {
  const out: string[] = [
    `Audit table against the immutable log, records last attempted ${report.since} to ${report.until}:`,
    `${report.finalRecords} final record(s) compared with ${report.logLines} log line(s) in ${report.blobs} blob(s); every field compared, except ${FIELDS_NOT_COMPARED.join(', ')} (which only move forward).`,
  ];
  const section = (title: string, header: string[], rows: string[][]) => {
    if (rows.length === 0) return;
    out.push('', `${title} (${rows.length}):`, formatTable(header, rows));
  };
  section(
    'Differ from the log',
    ['event', 'fields', 'logged at', 'identity key'],
    report.differs.map((d) => [d.eventId, d.fields.join(','), d.loggedAt, d.identityKey]),
  );
  section(
    'Final but missing from the log',
    ['event', 'outcome', 'last attempt', 'identity key'],
    report.missingFromLog.map((m) => [m.eventId, m.outcome, m.lastAttemptAt, m.identityKey]),
  );
  section(
    'In the log, gone from the table',
    ['event', 'logged outcome', 'logged at', 'identity key'],
    report.goneFromTable.map((g) => [g.eventId, g.loggedOutcome, g.loggedAt, g.identityKey]),
  );
  section(
    'In the log as final, no longer final in the table',
    ['event', 'outcome', 'logged outcome', 'logged at'],
    report.noLongerFinal.map((n) => [n.eventId, n.outcome, n.loggedOutcome, n.loggedAt]),
  );
  section(
    'Changed in the log without a run between (the table was edited, then re-logged)',
    ['event', 'fields', 'logged at', 'before, logged at'],
    report.changedWithoutRun.map((c) => [
      c.eventId,
      c.fields.join(','),
      c.loggedAt,
      c.previouslyLoggedAt,
    ]),
  );
  section(
    'Times in the future (a record states them about the past)',
    ['event', 'fields', 'identity key'],
    report.futureTimes.map((f) => [f.eventId, f.fields.join(','), f.identityKey]),
  );
  section(
    'Went back from the log (duplicates only grow)',
    ['event', 'fields', 'logged at', 'identity key'],
    report.wentBack.map((w) => [w.eventId, w.fields.join(','), w.loggedAt, w.identityKey]),
  );
  section(
    'Unreadable log lines',
    ['blob', 'line', 'reason'],
    report.unreadable.map((u) => [u.blob, String(u.line), u.reason]),
  );
  section(
    `Changed in the last ${IN_FLIGHT_MS / 60_000} minutes, may still be on the way to the log (not findings)`,
    ['event', 'would be', 'changed at'],
    report.pending.map((p) => [p.eventId, p.finding, p.changedAt]),
  );
  out.push(
    '',
    report.clean
      ? 'Clean: every final record matches its latest log line.'
      : 'FOUND DIFFERENCES: see above (offboard audit --event ID shows a record).',
  );
  return out.join('\n');
}
