import { plannedActions, type ActionName } from './actions';
import { countDuplicate, isClaimedByOther, isPermanent } from './auditRecords';
import type { LeavingEvent, OffboardingEvent } from './events';
import { decidedBy, type EventDecision } from './guardrail';
import { isEnded } from './lifecycle';
import { MessageProperties } from './messaging';
import type { AuditRecord, RecordKey } from './ports';
import { routeOfKind } from './routes';
import type { Delivery } from './run';

/*
 * The claim: from the stored record, whether this delivery may run the event now. Pure; the
 * orchestrator writes its decision conditionally (auditRecords.updateRecord).
 */

/**
 * How long a claim holds an event. Longer than a run can take: the host stops an invocation at
 * host.json's functionTimeout (5 min), and a run starts no Graph write after RUN_BUDGET_MS.
 */
export const CLAIM_LEASE_MS = 6 * 60_000;
/** A leave date this close is "now". */
const SCHEDULE_TOLERANCE_MS = 5_000;
/**
 * The copy scheduled for a leave date may arrive this much before it by our clock (Service Bus
 * enqueues it by its own clock). A copy that early or earlier is treated as an HR resend.
 */
const SCHEDULED_COPY_SKEW_MS = 5 * 60_000;

/** What a claim found. */
export type ClaimVerdict =
  | 'claimed'
  | 'duplicate'
  | 'busy'
  | 'permanent-again'
  /** Held by the guardrail: whether an operator decided about it is read next. */
  | 'held'
  /** Held, and an operator discarded it: now final. */
  | 'discarded';

export interface ClaimRequest {
  event: OffboardingEvent;
  key: RecordKey;
  actions: ActionName[];
  delivery: Delivery;
  runId: string;
  startedAt: Date;
  dryRun: boolean;
  /** An operator's decision about a held event ('unknown': not read yet). */
  decision: EventDecision | 'unknown' | undefined;
}

/** What the event asks for, from the action table. */
export function actionsOf(event: OffboardingEvent): ActionName[] {
  return plannedActions(
    event.kind === 'employee.leaving' ? { kind: event.kind, flags: event } : event,
  );
}

export function decideClaim(
  current: AuditRecord | undefined,
  request: ClaimRequest,
): { next?: AuditRecord; verdict: ClaimVerdict } {
  const { event, delivery, runId, startedAt } = request;
  const at = startedAt.toISOString();
  const lease = {
    claimedBy: runId,
    claimExpiresAt: new Date(startedAt.getTime() + CLAIM_LEASE_MS).toISOString(),
  };
  if (current === undefined) {
    return { next: { ...newRecord(request, at), ...lease }, verdict: 'claimed' };
  }
  // An end (succeeded, cancelled, discarded, superseded): every later delivery is a duplicate.
  if (isEnded(current)) return { next: countDuplicate(current, at), verdict: 'duplicate' };
  if (current.outcome === 'held' && !isClaimedByOther(current, runId, startedAt)) {
    // Held for an operator: it runs once released, ends once discarded; until then a delivery
    // (a resend, the operator's copy before the decision is readable) changes nothing.
    const { decision } = request;
    if (decision === 'unknown') return { verdict: 'held' };
    if (decision?.kind === 'release')
      return { next: { ...current, ...lease, lastAttemptAt: at }, verdict: 'claimed' };
    if (decision?.kind === 'discard') {
      const discard = decidedBy(decision);
      return {
        next: {
          ...current,
          outcome: 'discarded',
          guardrail: { ...current.guardrail, discard },
          notes: [
            ...current.notes,
            `Discarded by ${decision.by} at ${decision.at}: ${decision.reason}`,
          ],
          lastAttemptAt: at,
        },
        verdict: 'discarded',
      };
    }
    return { next: countDuplicate(current, at), verdict: 'duplicate' };
  }
  if (isClaimedByOther(current, runId, startedAt)) return { verdict: 'busy' };
  if (
    current.outcome === 'scheduled' &&
    event.kind === 'employee.leaving' &&
    isForLater(event, { prior: current, delivery }, startedAt)
  ) {
    // The same departure again before its date (HR resent it): it is already waiting.
    return { next: countDuplicate(current, at), verdict: 'duplicate' };
  }
  if (isPermanent(current) && current.messageId === delivery.messageId) {
    // A redelivery on its way to the dead-letter queue: counted, but it is no attempt.
    return { next: countDuplicate(current, at), verdict: 'permanent-again' };
  }
  return { next: { ...current, ...lease, lastAttemptAt: at }, verdict: 'claimed' };
}

/**
 * Whether a departure's leave date is still ahead. The copy the app scheduled for the date is
 * recognised by the audit record (scheduled, same date) plus its property, and may arrive a few
 * minutes early by our clock; a property on any other message changes nothing.
 */
export function isForLater(
  event: LeavingEvent,
  run: { prior: AuditRecord | undefined; delivery: Delivery },
  now: Date,
): boolean {
  if (event.effectiveAt === undefined) return false;
  const due = Date.parse(event.effectiveAt);
  const nowMs = now.getTime();
  if (due <= nowMs + SCHEDULE_TOLERANCE_MS) return false;
  const scheduledCopy =
    run.prior?.outcome === 'scheduled' &&
    run.delivery.properties?.[MessageProperties.scheduledFor] !== undefined &&
    nowMs >= due - SCHEDULED_COPY_SKEW_MS;
  return !scheduledCopy;
}

/** The record this run starts from: the stored one with a fresh attempt, or a new one. */
export function freshAttempt(
  claimed: AuditRecord,
  request: ClaimRequest,
  prior: AuditRecord | undefined,
): AuditRecord {
  const at = request.startedAt.toISOString();
  const fresh = newRecord({ ...request, key: claimed }, at);
  return {
    ...fresh,
    attempts: (prior?.attempts ?? 0) + 1,
    ...(prior?.waits === undefined ? {} : { waits: prior.waits }),
    duplicates: claimed.duplicates,
    ...(claimed.lastDuplicateAt === undefined ? {} : { lastDuplicateAt: claimed.lastDuplicateAt }),
    ...(prior?.idReused ? { idReused: true } : {}),
    // What the guardrail counted, held or released stays with the event.
    ...(prior?.guardrail === undefined ? {} : { guardrail: prior.guardrail }),
    // A departure keeps its leave date and the message holding it through later attempts.
    ...(prior?.effectiveAt === undefined ? {} : { effectiveAt: prior.effectiveAt }),
    ...(prior?.scheduledSequenceNumber === undefined
      ? {}
      : { scheduledSequenceNumber: prior.scheduledSequenceNumber }),
    // Announced as delayed once: later attempts keep the mark.
    ...(prior?.delayedAt === undefined ? {} : { delayedAt: prior.delayedAt }),
    firstAttemptAt: claimed.firstAttemptAt,
  };
}

function newRecord(request: ClaimRequest, at: string): AuditRecord {
  const { event, key, actions, delivery } = request;
  return {
    identityKey: key.identityKey,
    contentDigest: key.contentDigest,
    eventId: event.id,
    eventType: event.type,
    source: event.source,
    ...(event.time === undefined ? {} : { eventTime: event.time }),
    route: routeOfKind(event.kind),
    user: event.userAsGiven,
    requestedActions: actions,
    actions: [],
    graphRequestIds: [],
    outcome: 'in-progress',
    notes: [],
    // The leave date is on the record from the claim on: a cancellation can tell a run that is
    // only scheduling the departure from one carrying it out.
    ...(event.kind === 'employee.leaving' && event.effectiveAt !== undefined
      ? { effectiveAt: event.effectiveAt }
      : {}),
    ...(event.reason === undefined ? {} : { reason: event.reason }),
    ...(event.ticket === undefined ? {} : { ticket: event.ticket }),
    dryRun: request.dryRun,
    attempts: 0,
    duplicates: 0,
    messageId: delivery.messageId,
    firstAttemptAt: at,
    lastAttemptAt: at,
  };
}
