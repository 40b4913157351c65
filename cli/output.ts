import type { AuditRecord } from '../shared/core/ports';
import type { DeadLetterSummary } from './deadLetters';

/**
 * Characters a terminal acts on instead of printing: C0 controls (escape sequences start here),
 * DEL, C1 controls (U+009B is a one-byte CSI), line and paragraph separators, bidi marks, embeddings,
 * overrides and isolates (text that reads differently from what it is), zero-width characters and
 * the BOM. Event bodies, dead-letter reasons and audit fields come from outside: they are never
 * written raw to an operator's terminal.
 */
const UNSAFE =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/** `\uXXXX` for each unsafe character: readable, unambiguous, and the same escape JSON uses. */
export function escapeUnsafe(text: string): string {
  return text.replace(UNSAFE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * JSON for stdout. JSON.stringify escapes C0 but writes DEL, C1, U+2028/2029 and bidi characters
 * raw; escaping them line by line (the only raw newlines are the indentation's, since newlines
 * inside strings are already `\n`) gives JSON that parses back to the same value.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2).split('\n').map(escapeUnsafe).join('\n');
}

/** Aligned columns; every cell escaped, so one row is always one line. */
export function formatTable(header: string[], rows: string[][]): string {
  const cells = rows.map((row) => row.map(escapeUnsafe));
  const widths = header.map((h, i) =>
    Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)),
  );
  const format = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [format(header), ...cells.map(format)].join('\n');
}

export function deadLetterTable(summaries: DeadLetterSummary[]): string {
  if (summaries.length === 0) return 'No dead-lettered messages.';
  return formatTable(
    [
      'sequence',
      'enqueued',
      'event',
      'user',
      'deliveries',
      'reason',
      'description',
      'last audited error',
      'when replayed',
    ],
    summaries.map((s) => [
      s.sequenceNumber,
      s.enqueuedTime ?? '',
      s.eventId ?? '',
      s.user ?? '',
      String(s.deliveryCount),
      s.reason,
      s.description.slice(0, 60),
      (s.lastAuditedError ?? '').slice(0, 80),
      s.verdict.text,
    ]),
  );
}

export function auditTable(records: AuditRecord[]): string {
  if (records.length === 0) return 'No audit records.';
  return formatTable(
    ['time', 'event', 'type', 'user', 'outcome', 'actions', 'verified', 'error'],
    records.map((r) => [
      r.lastAttemptAt,
      r.eventId,
      r.eventType ?? '',
      r.user ?? '',
      r.outcome,
      r.actions.map((a) => `${a.action}:${a.status}`).join(' '),
      r.verification ? (r.verification.verified ? 'yes' : 'no') : '',
      r.errorCode === undefined ? '' : `${r.errorCode}: ${r.errorMessage ?? ''}`,
    ]),
  );
}

/** One event's record, a field a line, for `offboard process`. */
export function describeRecord(record: AuditRecord, duplicate: boolean): string {
  const lines: Array<[string, string]> = [
    ['event', record.eventId],
    ['outcome', duplicate ? `already processed (${record.outcome}); nothing done` : record.outcome],
  ];
  if (record.user !== undefined)
    lines.push(['user', `${record.user}${record.objectId ? ` (${record.objectId})` : ''}`]);
  for (const action of record.actions) {
    lines.push([
      'action',
      `${action.action}: ${action.status}${action.message ? ` - ${action.message}` : ''}`,
    ]);
  }
  if (record.verification) {
    const { verified, signInSessionsValidFrom } = record.verification;
    lines.push([
      'verified',
      `${verified ? 'yes' : 'NO'} (signInSessionsValidFrom ${signInSessionsValidFrom ?? 'unknown'})`,
    ]);
  }
  for (const note of record.notes) lines.push(['note', note]);
  return lines.map(([label, value]) => `${label.padEnd(10)} ${escapeUnsafe(value)}`).join('\n');
}

/** The stderr line of a failure: its code, then an escaped message (messages quote input). */
export function errorLine(code: string, message: string): string {
  return `error ${code}: ${escapeUnsafe(message)}\n`;
}
