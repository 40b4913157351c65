import { actionSpec, type ActionName } from './actions';
import { isFinal } from './auditRecords';
import type { EventDecision, GuardrailTrip } from './guardrail';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import type { OffboardingEvent } from './events';
import type { OutgoingMessage } from './messaging';
import type { Delivery, Disposition, OffboardingDeps } from './offboard';
import type { WritePacer } from '../pacing/pacer';
import type { Secret } from './password';
import type {
  ActionResult,
  AuditRecord,
  DirectoryUser,
  FinalRecordSink,
  PolicyConfig,
  RecordKey,
} from './ports';
import { describeUserRef, type UserRef } from './userRef';

/**
 * What the flows of one run share (the use case builds it; departures.ts and actionRun.ts use it):
 * the ports, the clock, and the steps every flow starts from.
 */
export interface FlowContext {
  deps: OffboardingDeps;
  now(): Date;
  pacer: WritePacer;
  makePassword(): Secret;
  /** Resolves the user (an unknown or protected user ends the flow now). */
  resolve(run: Run): Promise<{ user: DirectoryUser } | { flow: FlowResult }>;
  /** A copy of the delivered event for the same queue, keeping its scalar properties. */
  copyOf(
    delivery: Delivery,
    messageId: string,
    properties: Record<string, string | number>,
  ): OutgoingMessage;
}

/** The state of one run after its claim: everything the flows need. */
export interface Run {
  id: string;
  event: OffboardingEvent;
  key: RecordKey;
  delivery: Delivery;
  startedAt: Date;
  /** The record as it stood before this run (undefined for a new event). */
  prior: AuditRecord | undefined;
  /** The record this run will write at the end. */
  record: AuditRecord;
  /** An operator released this held event (`offboard guardrail release`). */
  release?: EventDecision;
}

/** What a flow decided, before settlement (delayed retry) and the one final write. */
export interface FlowResult {
  disposition: Disposition;
  error?: OffboardingError;
  /** The run tripped the blast-radius guardrail. */
  trip?: GuardrailTrip;
}

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
 * Gives a final record to every sink (the immutable log first: it is the evidence; then the
 * outcome topic). When one fails it throws FinalRecordUndelivered (retryable): the record stays as
 * written, and the delivery comes back to give it again.
 */
export async function deliverFinal(
  sinks: readonly FinalRecordSink[],
  record: AuditRecord,
): Promise<void> {
  if (!isFinal(record)) return;
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
