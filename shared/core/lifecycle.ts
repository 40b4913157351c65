import type { AuditRecord, Outcome } from './ports';

/*
 * The audit record's lifecycle, declared once: which outcomes a record can move to from each, which
 * are final (no later delivery changes them by themselves: the immutable log keeps them) and which
 * are announced to the final-record sinks (the log and the outcome topic). The claim, the settlement,
 * the cancellation, the guardrail's discard and `audit verify` all read this table.
 */

/** An outcome, with `failed` split by whether a retry may still fix it. */
export type Phase = Exclude<Outcome, 'failed'> | 'failed-retryable' | 'failed-permanent';

interface Row {
  /** No later delivery changes it by itself (a replay, a run by hand or an operator may). */
  final: boolean;
  /** The sinks hear of it: every final outcome, and `delayed` once (the alert fires on it). */
  announced: boolean;
  /** The phases a write may move the record to. A record never moves back to "new". */
  next: readonly Phase[];
}

/** Where a run may leave a record it claimed (a deferred run keeps the phase it found). */
const RUN_ENDS = [
  'in-progress',
  'succeeded',
  'failed-retryable',
  'failed-permanent',
  'refused',
  'dry-run',
  'scheduled',
  'held',
  'superseded',
  'delayed',
] as const satisfies readonly Phase[];

/** A departure that has not written to Graph yet may also be cancelled. */
const WAITING_ENDS = [...RUN_ENDS, 'cancelled'] as const;

export const LIFECYCLE = {
  'in-progress': { final: false, announced: false, next: WAITING_ENDS },
  scheduled: { final: false, announced: false, next: WAITING_ENDS },
  'failed-retryable': { final: false, announced: false, next: WAITING_ENDS },
  delayed: { final: false, announced: true, next: WAITING_ENDS },
  held: { final: true, announced: true, next: [...WAITING_ENDS, 'discarded'] },
  // A replay (new message id) or a run by hand runs these again.
  'failed-permanent': { final: true, announced: true, next: RUN_ENDS },
  refused: { final: true, announced: true, next: RUN_ENDS },
  'dry-run': { final: true, announced: true, next: RUN_ENDS },
  // Ends: a later delivery is a duplicate, counted on the record without a transition.
  succeeded: { final: true, announced: true, next: [] },
  cancelled: { final: true, announced: true, next: [] },
  discarded: { final: true, announced: true, next: [] },
  superseded: { final: true, announced: true, next: [] },
} as const satisfies Record<Phase, Row>;

export const Phases = Object.keys(LIFECYCLE) as Phase[];

export function phaseOf(record: Pick<AuditRecord, 'outcome' | 'retryable'>): Phase {
  if (record.outcome !== 'failed') return record.outcome;
  return record.retryable === false ? 'failed-permanent' : 'failed-retryable';
}

export function canMove(from: Phase, to: Phase): boolean {
  return from === to || (LIFECYCLE[from].next as readonly Phase[]).includes(to);
}

/** A record no later delivery changes by itself: what the immutable log keeps. */
export function isFinal(record: Pick<AuditRecord, 'outcome' | 'retryable'>): boolean {
  return LIFECYCLE[phaseOf(record)].final;
}

/** A record the sinks (immutable log, outcome topic) are told of. */
export function isAnnounced(record: Pick<AuditRecord, 'outcome' | 'retryable'>): boolean {
  return LIFECYCLE[phaseOf(record)].announced;
}

/** An end: later deliveries are duplicates. */
export function isEnded(record: Pick<AuditRecord, 'outcome' | 'retryable'>): boolean {
  return LIFECYCLE[phaseOf(record)].next.length === 0;
}

/**
 * Checks a write against the table. A refused move is a defect in the app, never data: it throws,
 * the delivery is retried and the log says which move was refused.
 */
export function assertMove(
  from: Pick<AuditRecord, 'outcome' | 'retryable'> | undefined,
  to: Pick<AuditRecord, 'outcome' | 'retryable' | 'eventId'>,
): void {
  if (from === undefined) return;
  const a = phaseOf(from);
  const b = phaseOf(to);
  if (!canMove(a, b))
    throw new Error(`Audit record of ${to.eventId}: the lifecycle does not allow ${a} -> ${b}.`);
}
