import { actionSpec, type ActionName } from './actions';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { isAnnounced } from './lifecycle';
import type { ActionResult, AuditRecord, FinalRecordSink, PolicyConfig } from './ports';
import type { FlowResult } from './run';
import { IntentNames, attemptedBy, supersedingOf, type Intent, type Timeline } from './timeline';
import { describeUserRef, type UserRef } from './userRef';

/*
 * The small steps every flow ends with: refuse, fail, supersede, and telling the sinks.
 */

export function isProtected(policy: PolicyConfig, ...identifiers: (string | undefined)[]): boolean {
  return identifiers.some((id) => id !== undefined && policy.protectedUsers.has(id.toLowerCase()));
}

export function failureOf(action: ActionName, error: OffboardingError): ActionResult {
  return {
    action,
    status: 'failed',
    errorCode: error.code,
    message: error.message,
    ...(error.requestId === undefined ? {} : { requestId: error.requestId }),
  };
}

export function setError(record: AuditRecord, error: OffboardingError): void {
  record.errorCode = error.code;
  record.errorMessage = error.message;
  record.retryable = error.retryable;
}

export function refuse(record: AuditRecord, ref: UserRef): FlowResult {
  const error = new OffboardingError(
    ErrorCodes.ProtectedAccount,
    `${describeUserRef(ref)} is a protected account (PROTECTED_USERS): nothing was changed. Remove it from PROTECTED_USERS only if this is really intended.`,
    { retryable: false },
  );
  record.outcome = 'refused';
  record.actions = record.requestedActions.map((action) => ({ action, status: 'not-attempted' }));
  setError(record, error);
  return { disposition: 'reject', error };
}

export function fail(record: AuditRecord, error: OffboardingError): FlowResult {
  for (const action of record.requestedActions) {
    if (!record.actions.some((a) => a.action === action)) {
      record.actions.push({ action, status: 'not-attempted' });
    }
  }
  record.outcome = 'failed';
  setError(record, error);
  return { disposition: error.retryable ? 'retry' : 'reject', error };
}

/**
 * A later HR intent for this person came first: the event ends without a Graph write, whatever
 * path brought it (redelivery, replay, a run by hand, a guardrail release). What earlier runs of
 * it wrote stays on the record: from its own earlier attempts, from the person's timeline, and a
 * run that committed to writes and never said what it wrote is named as unknown, never as nothing.
 */
export function supersede(
  record: AuditRecord,
  by: Intent,
  prior: AuditRecord | undefined,
  timeline: Timeline | undefined,
): FlowResult {
  const kind = IntentNames[by.kind];
  const ref = `${record.identityKey}/${record.contentDigest}`;
  const begun = attemptedBy(timeline, ref);
  record.outcome = 'superseded';
  record.supersededBy = supersedingOf(by);
  record.actions = record.requestedActions.map((action): ActionResult => {
    const earlier = prior?.actions.find(
      (a) => a.action === action && (a.status === 'succeeded' || a.status === 'failed'),
    );
    if (earlier !== undefined)
      return {
        ...earlier,
        message:
          earlier.status === 'succeeded'
            ? 'Done in an earlier attempt, before this event was superseded.'
            : `Failed in an earlier attempt, before this event was superseded (Graph may have made it): ${earlier.message ?? earlier.errorCode ?? ''}`,
      };
    if (begun.includes(action))
      return {
        action,
        status: 'failed',
        errorCode: ErrorCodes.WriteOutcomeUnknown,
        message:
          "An earlier run of this event began this write (the person's timeline shows it) and ended without recording whether Graph made it.",
      };
    return { action, status: 'not-attempted' };
  });
  delete record.errorCode;
  delete record.errorMessage;
  delete record.retryable;
  const wrote = record.actions.filter((a) => a.status !== 'not-attempted').map((a) => a.action);
  record.notes.push(
    `Superseded by ${kind} of the same person, event ${by.eventId} (${by.source}) at ${by.at}: the person's latest HR intent stands, so this run wrote nothing.` +
      (wrote.length === 0
        ? ' No earlier run of this event wrote anything.'
        : ` Earlier runs of this event wrote, or may have written: ${wrote.join(', ')}; a later intent does not undo them.`),
  );
  return { disposition: 'done' };
}

/**
 * Gives an announced record to every sink (the immutable log first: it is the evidence; then the
 * outcome topic). When one fails it throws FinalRecordUndelivered (retryable): the record stays as
 * written, and the delivery comes back to give it again.
 */
export async function deliverFinal(
  sinks: readonly FinalRecordSink[],
  record: AuditRecord,
): Promise<void> {
  if (!isAnnounced(record)) return;
  for (const sink of sinks) {
    try {
      await sink.accept(record);
    } catch (thrown) {
      const cause = toOffboardingError(thrown);
      throw new OffboardingError(
        ErrorCodes.FinalRecordUndelivered,
        `The audit record of ${record.eventId} is final (${record.outcome}) but the ${sink.name} did not take it (${cause.code}: ${cause.message}); the delivery comes back to give it again.`,
        { retryable: true, cause: thrown },
      );
    }
  }
}

export function onPremisesMastered(action: ActionName): OffboardingError {
  return new OffboardingError(
    ErrorCodes.OnPremisesMastered,
    `The user is synchronised from on-premises Active Directory: ${actionSpec(action).label} in on-premises AD (the change then syncs to Entra ID).`,
    { retryable: false },
  );
}

/**
 * One error for the event from its failed actions: retryable if any failure is (a retry may fix
 * that part), waiting at least the longest Retry-After any of them was given.
 */
export function combinedError(
  failures: ActionResult[],
  errors: Map<ActionName, OffboardingError>,
): OffboardingError {
  const all = failures.map(
    (f) =>
      errors.get(f.action) ??
      new OffboardingError(
        (f.errorCode ?? ErrorCodes.Unexpected) as OffboardingError['code'],
        f.message ?? '',
        { retryable: false },
      ),
  );
  const retryable = all.filter((e) => e.retryable);
  const lead =
    retryable[0] ??
    all[0] ??
    new OffboardingError(ErrorCodes.Unexpected, 'Unknown failure.', { retryable: true });
  const waits = retryable.map((e) => e.retryAfterSeconds ?? 0);
  const retryAfterSeconds = waits.length > 0 ? Math.max(...waits) : undefined;
  const message = failures
    .map((f) => `${f.action}: ${f.message ?? f.errorCode ?? 'failed'}`)
    .join(' | ');
  return new OffboardingError(lead.code, message, {
    retryable: retryable.length > 0,
    ...(retryAfterSeconds ? { retryAfterSeconds } : {}),
  });
}
