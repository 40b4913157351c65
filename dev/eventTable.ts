import { escapeUnsafe } from '../cli/output';
import type { AuditRecord } from '../shared/core/ports';

/** The sandbox's table of events: one line per event, whatever its fields hold. */
export const EVENT_TABLE_HEADER = ['event', 'user', 'outcome', 'actions', 'verified', 'note'];

/** Widths of the columns before the note; event, user and actions give way on a narrow terminal. */
const WIDE = { event: 30, user: 30, actions: 32 };
const OUTCOME = 9;
const VERIFIED = 8;
const SEPARATOR = 2;
const MIN_NOTE = 20;
const MIN_COLUMN = 10;

/** Column widths for a terminal `width` columns wide; without one, the note is not cut. */
function widthsFor(width: number | undefined): Array<number | undefined> {
  const wide = WIDE.event + WIDE.user + WIDE.actions;
  if (width === undefined)
    return [WIDE.event, WIDE.user, OUTCOME, WIDE.actions, VERIFIED, undefined];
  const available = width - OUTCOME - VERIFIED - SEPARATOR * 5 - MIN_NOTE;
  const scale = Math.min(1, available / wide);
  const [event, user, actions] = [WIDE.event, WIDE.user, WIDE.actions].map((w) =>
    Math.max(MIN_COLUMN, Math.floor(w * scale)),
  ) as [number, number, number];
  const note = Math.max(
    MIN_NOTE,
    width - event - user - actions - OUTCOME - VERIFIED - SEPARATOR * 5,
  );
  return [event, user, OUTCOME, actions, VERIFIED, note];
}

/**
 * A cell padded to its width, escaped (one event is always one line); on a terminal also cut to
 * it with an ellipsis. Without a terminal nothing is cut: a log keeps every word.
 */
function cell(text: string, width: number | undefined, cut: boolean): string {
  const safe = escapeUnsafe(text);
  if (width === undefined) return safe;
  if (safe.length <= width || !cut) return safe.padEnd(width);
  return `${safe.slice(0, width - 1)}…`;
}

export function tableRow(cells: string[], width?: number): string {
  const widths = widthsFor(width);
  return cells
    .map((text, i) => cell(text, widths[i], width !== undefined))
    .join(' '.repeat(SEPARATOR))
    .trimEnd();
}

/** "revoke ok, disable FAILED": the verb of each action and how it went. */
function actionsOf(record: AuditRecord): string {
  const status = (s: string) =>
    s === 'succeeded' ? 'ok' : s === 'not-attempted' ? '-' : s.toUpperCase();
  return (
    record.actions
      .map((a) => `${a.action.replace(/[A-Z].*$/, '')} ${status(a.status)}`)
      .join(', ') || 'none'
  );
}

/** What else to know about an event: its error, leave date or why it is held. */
function noteOf(record: AuditRecord): string {
  if (record.outcome === 'scheduled') return `leave date ${record.effectiveAt ?? '?'}`;
  if (record.outcome === 'held') return record.guardrail?.heldReason ?? 'held by the guardrail';
  if (record.errorCode !== undefined) return `${record.errorCode}: ${record.errorMessage ?? ''}`;
  return '';
}

export function eventRow(id: string, record: AuditRecord | undefined, width?: number): string {
  if (record === undefined) return tableRow([id, '', 'no audit record yet'], width);
  return tableRow(
    [
      record.eventId,
      record.user ?? '(invalid)',
      record.outcome,
      actionsOf(record),
      record.verification ? (record.verification.verified ? 'yes' : 'NO') : '',
      noteOf(record),
    ],
    width,
  );
}
