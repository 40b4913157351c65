import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { createHash } from 'node:crypto';
import {
  decodeBody,
  parseEvent,
  salvageEventId,
  type EventKind,
  type LeavingEvent,
  type OffboardingEvent,
} from './events';
import { MessageProperties, type Scheduler } from './messaging';
import { MAX_SCHEDULE_AHEAD_DAYS } from './queuePolicy';
import { generatePassword } from './password';
import type {
  ActionName,
  ActionResult,
  AuditLog,
  AuditRecord,
  Directory,
  DirectoryUser,
  Verification,
} from './ports';
import { describeUserRef, type UserRef } from './userRef';
import type { PolicyConfig } from './config';

/** One delivery of one message, from Service Bus or from the command line. */
export interface Delivery {
  body: unknown;
  /** Event kinds the queue (or the command) takes. */
  accepts: readonly EventKind[];
  /** Service Bus MessageId, or a fresh id for a run by hand. */
  messageId: string;
  /** This is the copy scheduled for the leave date: act now whatever effectiveAt says. */
  scheduledCopy?: boolean;
  /** 1-based attempt the message carries (delayed retries count up; attempts that could not be recorded still count). */
  attempt?: number;
}

/**
 * - done: finished (succeeded, dry run, duplicate): complete the message.
 * - retry: a transient failure: try again later.
 * - reject: a permanent failure (invalid, refused, forbidden...): recorded; dead-letter it.
 */
export type Disposition = 'done' | 'retry' | 'reject';

export interface ProcessResult {
  disposition: Disposition;
  record: AuditRecord;
  /** The event had already succeeded; nothing was done. */
  duplicate: boolean;
  error?: OffboardingError;
}

export interface OffboardingDeps {
  directory: Directory;
  audit: AuditLog;
  policy: PolicyConfig;
  /** Schedules leave dates and cancels them; the queue is where departures live. */
  scheduler: Scheduler;
  leavingQueue: string;
  now?: () => Date;
  generatePassword?: typeof generatePassword;
}

/** A leave date this close is "now" (the scheduled copy itself is recognised by its property). */
const SCHEDULE_TOLERANCE_MS = 5_000;

function plannedActions(event: OffboardingEvent): ActionName[] {
  if (event.kind !== 'employee.leaving') return ['revokeSignInSessions'];
  // Disable first (no new sign-ins), then reset, then revoke, so nothing issued in between survives.
  const actions: ActionName[] = [];
  if (event.disableAccount) actions.push('disableAccount');
  if (event.resetPassword) actions.push('resetPassword');
  actions.push('revokeSignInSessions');
  return actions;
}

function isProtected(policy: PolicyConfig, ...identifiers: (string | undefined)[]): boolean {
  return identifiers.some((id) => id !== undefined && policy.protectedUsers.has(id.toLowerCase()));
}

function failureOf(action: ActionName, error: OffboardingError): ActionResult {
  return {
    action,
    status: 'failed',
    errorCode: error.code,
    message: error.message,
    ...(error.requestId === undefined ? {} : { requestId: error.requestId }),
  };
}

export class OffboardingService {
  private readonly now: () => Date;
  private readonly makePassword: typeof generatePassword;

  constructor(private readonly deps: OffboardingDeps) {
    this.now = deps.now ?? (() => new Date());
    this.makePassword = deps.generatePassword ?? generatePassword;
  }

  /**
   * Runs one delivery to its final audit record. Throws only when the audit store itself fails
   * (AuditUnavailable, retryable): then nothing is recorded and the delivery must be retried.
   */
  async process(delivery: Delivery): Promise<ProcessResult> {
    const startedAt = this.now().toISOString();
    let event: OffboardingEvent;
    try {
      event = parseEvent(delivery.body, delivery.accepts);
    } catch (error) {
      return this.recordInvalid(delivery, toOffboardingError(error), startedAt);
    }

    const prior = await this.deps.audit.get(event.id);
    if (prior?.outcome === 'succeeded' || prior?.outcome === 'cancelled') {
      await this.deps.audit.recordDuplicate(event.id, startedAt);
      return { disposition: 'done', record: prior, duplicate: true };
    }
    if (prior !== undefined && isPermanent(prior) && prior.messageId === delivery.messageId) {
      // A redelivery of a message already judged permanently failed: no Graph call, straight on
      // towards the dead-letter queue. A replay (new message id) or a run by hand goes through.
      const record = { ...prior, attempts: prior.attempts + 1, lastAttemptAt: startedAt };
      await this.deps.audit.put(record);
      return { disposition: 'reject', record, duplicate: false, error: errorOf(record) };
    }

    const record = this.newRecord(event, delivery, prior, startedAt);
    let result: ProcessResult;
    if (event.kind === 'employee.leaving.cancelled') {
      result = await this.cancelDeparture(event, record);
    } else if (event.kind === 'employee.leaving' && this.isForLater(event, delivery)) {
      if (prior?.outcome === 'scheduled') {
        // The same departure again (HR resent it): it is already waiting on the queue.
        await this.deps.audit.recordDuplicate(event.id, startedAt);
        return { disposition: 'done', record: prior, duplicate: true };
      }
      result = await this.scheduleDeparture(event, record, delivery);
    } else {
      result = await this.run(event, record, prior);
    }
    await this.deps.audit.put(result.record);
    return result;
  }

  private isForLater(event: LeavingEvent, delivery: Delivery): boolean {
    if (event.effectiveAt === undefined || delivery.scheduledCopy === true) return false;
    return Date.parse(event.effectiveAt) > this.now().getTime() + SCHEDULE_TOLERANCE_MS;
  }

  /** Resolves the user (an unknown or protected user fails now, not on the leave date). */
  private async resolve(
    event: OffboardingEvent,
    record: AuditRecord,
  ): Promise<{ user: DirectoryUser } | { result: ProcessResult }> {
    const { policy, directory } = this.deps;
    if (isProtected(policy, event.user.value)) return { result: refuse(record, event.user) };
    let user: DirectoryUser;
    try {
      const read = await directory.getUser(event.user);
      user = read.user;
      if (read.requestId) record.graphRequestIds.push(read.requestId);
    } catch (error) {
      return { result: fail(record, toOffboardingError(error)) };
    }
    record.objectId = user.id;
    record.userPrincipalName = user.userPrincipalName;
    if (isProtected(policy, user.id, user.userPrincipalName))
      return { result: refuse(record, event.user) };
    return { user };
  }

  private async scheduleDeparture(
    event: LeavingEvent,
    record: AuditRecord,
    delivery: Delivery,
  ): Promise<ProcessResult> {
    const at = new Date(event.effectiveAt as string);
    const horizon = this.now().getTime() + MAX_SCHEDULE_AHEAD_DAYS * 86_400_000;
    if (at.getTime() > horizon) {
      return fail(
        record,
        new OffboardingError(
          ErrorCodes.InvalidEvent,
          `data.effectiveAt ${event.effectiveAt} is more than ${MAX_SCHEDULE_AHEAD_DAYS} days ahead; publish the departure closer to the date.`,
          { retryable: false },
        ),
      );
    }
    const resolved = await this.resolve(event, record);
    if ('result' in resolved) return resolved.result;
    record.effectiveAt = event.effectiveAt;
    record.actions = record.requestedActions.map((action) => ({ action, status: 'not-attempted' }));
    try {
      const sequence = await this.deps.scheduler.schedule(
        this.deps.leavingQueue,
        {
          body: decodeBody(delivery.body),
          // Deterministic: if we crash before completing, the re-scheduled copy is a duplicate
          // that Service Bus drops.
          messageId: `leave-${digest(event.id, event.effectiveAt as string)}`,
          contentType: 'application/json',
          applicationProperties: {
            [MessageProperties.scheduledFor]: event.effectiveAt as string,
            [MessageProperties.originalMessageId]: delivery.messageId,
          },
        },
        at,
      );
      record.scheduledSequenceNumber = sequence;
    } catch (error) {
      return fail(record, toOffboardingError(error));
    }
    record.outcome = 'scheduled';
    record.notes.push(
      `Scheduled for the leave date ${event.effectiveAt} (sequence number ${record.scheduledSequenceNumber}).`,
    );
    if (this.deps.policy.dryRun) {
      record.notes.push(
        'DRY_RUN is on now; the departure runs in whatever mode is set on the leave date.',
      );
    }
    return { disposition: 'done', record, duplicate: false };
  }

  /** employee.leaving.cancelled: cancel every departure still waiting for this user. */
  private async cancelDeparture(
    event: OffboardingEvent,
    record: AuditRecord,
  ): Promise<ProcessResult> {
    const resolved = await this.resolve(event, record);
    if ('result' in resolved) return resolved.result;
    const { audit, scheduler, leavingQueue } = this.deps;
    const history = await audit.findByUser(resolved.user.id);
    const pending = history.filter(
      (r) => r.outcome === 'scheduled' && r.scheduledSequenceNumber !== undefined,
    );
    const now = this.now().toISOString();
    for (const departure of pending) {
      let stillScheduled: boolean;
      try {
        stillScheduled = await scheduler.cancel(
          leavingQueue,
          departure.scheduledSequenceNumber as string,
        );
      } catch (error) {
        return fail(record, toOffboardingError(error));
      }
      // Marked cancelled either way: a copy already on the queue finds this and does nothing.
      departure.outcome = 'cancelled';
      departure.notes.push(
        `Cancelled by event ${event.id} at ${now}${stillScheduled ? '' : ' (the scheduled message had already been enqueued; it will be skipped)'}.`,
      );
      await audit.put(departure);
      record.notes.push(
        `Cancelled departure ${departure.eventId} (leave date ${departure.effectiveAt ?? 'unknown'}).`,
      );
    }
    if (pending.length === 0) {
      const executed = history.filter(
        (r) =>
          r.outcome === 'succeeded' &&
          r.eventType !== undefined &&
          /employee\.leaving$/.test(r.eventType),
      );
      const last = executed[executed.length - 1];
      if (last !== undefined) {
        return fail(
          record,
          new OffboardingError(
            ErrorCodes.DepartureAlreadyExecuted,
            `No departure was waiting: event ${last.eventId} already offboarded this user at ${last.lastAttemptAt}. Re-enable the account by hand if the person stays.`,
            { retryable: false },
          ),
        );
      }
      record.notes.push('No pending departure was found for this user; nothing to cancel.');
    }
    record.outcome = 'succeeded';
    return { disposition: 'done', record, duplicate: false };
  }

  private async run(
    event: OffboardingEvent,
    record: AuditRecord,
    prior: AuditRecord | undefined,
  ): Promise<ProcessResult> {
    const { policy } = this.deps;
    const resolved = await this.resolve(event, record);
    if ('result' in resolved) return resolved.result;
    const { user } = resolved;

    const synced = user.onPremisesSyncEnabled === true;
    const guest = user.userType?.toLowerCase() === 'guest';
    if (guest) {
      record.notes.push(
        'Guest user: revoking sessions does not reach the home tenant where the guest signs in; ' +
          (record.requestedActions.includes('disableAccount')
            ? 'disabling the account is what blocks access to this tenant.'
            : 'the account is not being disabled, so the guest can sign in again.'),
      );
    }

    if (policy.dryRun) {
      record.actions = record.requestedActions.map((action) =>
        synced && action !== 'revokeSignInSessions'
          ? failureOf(action, onPremisesMastered(action))
          : { action, status: 'would-run' },
      );
      record.outcome = 'dry-run';
      record.notes.push('DRY_RUN is on: nothing was written to Microsoft Graph.');
      return { disposition: 'done', record, duplicate: false };
    }

    // Errors of this run's failed actions, kept to decide retryability and Retry-After.
    const errors = new Map<ActionName, OffboardingError>();
    for (const action of record.requestedActions) {
      const earlier = prior?.actions.find((a) => a.action === action && a.status === 'succeeded');
      if (earlier && action !== 'revokeSignInSessions') {
        // Done by an earlier attempt of this event; do not reset a password twice.
        record.actions.push({ ...earlier, message: 'Done in an earlier attempt.' });
        continue;
      }
      if (synced && action !== 'revokeSignInSessions') {
        record.actions.push(failureOf(action, onPremisesMastered(action)));
        continue;
      }
      record.actions.push(await this.perform(action, user.id, record, errors));
    }

    const revoked = record.actions.find((a) => a.action === 'revokeSignInSessions');
    if (revoked?.status === 'succeeded') {
      const verification = await this.verify(event.user, user, record);
      record.verification = verification.result;
      if (verification.error) return fail(record, verification.error);
    }

    const failures = record.actions.filter((a) => a.status === 'failed');
    if (failures.length === 0) {
      record.outcome = 'succeeded';
      return { disposition: 'done', record, duplicate: false };
    }
    return fail(record, combinedError(failures, errors));
  }

  private async perform(
    action: ActionName,
    userId: string,
    record: AuditRecord,
    errors: Map<ActionName, OffboardingError>,
  ): Promise<ActionResult> {
    const { directory } = this.deps;
    try {
      const call =
        action === 'disableAccount'
          ? await directory.disableAccount(userId)
          : action === 'resetPassword'
            ? await directory.resetPassword(userId, this.makePassword())
            : await directory.revokeSignInSessions(userId);
      if (call.requestId) record.graphRequestIds.push(call.requestId);
      return {
        action,
        status: 'succeeded',
        ...(call.requestId ? { requestId: call.requestId } : {}),
      };
    } catch (error) {
      const failure = toOffboardingError(error);
      errors.set(action, failure);
      if (failure.requestId) record.graphRequestIds.push(failure.requestId);
      return failureOf(action, failure);
    }
  }

  /** Reads signInSessionsValidFromDateTime back: the proof that the revocation took effect. */
  private async verify(
    ref: UserRef,
    before: DirectoryUser,
    record: AuditRecord,
  ): Promise<{ result: Verification; error?: OffboardingError }> {
    const previous = before.signInSessionsValidFromDateTime ?? undefined;
    let after: DirectoryUser;
    try {
      const read = await this.deps.directory.getUser({ kind: 'objectId', value: before.id });
      if (read.requestId) record.graphRequestIds.push(read.requestId);
      after = read.user;
    } catch (error) {
      const failure = toOffboardingError(error);
      return {
        result: {
          verified: false,
          ...(previous ? { previousSignInSessionsValidFrom: previous } : {}),
        },
        error: new OffboardingError(
          failure.code,
          `Could not read the user back to verify the revocation: ${failure.message}`,
          {
            retryable: failure.retryable,
            ...(failure.retryAfterSeconds === undefined
              ? {}
              : { retryAfterSeconds: failure.retryAfterSeconds }),
          },
        ),
      };
    }
    const validFrom = after.signInSessionsValidFromDateTime ?? undefined;
    // Proof is the value moving past what it was before this revocation. "Recent enough" is no
    // proof: a replica that has not seen this revocation may return an earlier, recent one.
    // (Graph keeps whole seconds, so a revocation in the same second as the previous one looks
    // unproven and is simply retried later.)
    const moved =
      validFrom !== undefined &&
      (previous === undefined || Date.parse(validFrom) > Date.parse(previous));
    const result: Verification = {
      verified: moved,
      ...(validFrom === undefined ? {} : { signInSessionsValidFrom: validFrom }),
      ...(previous === undefined ? {} : { previousSignInSessionsValidFrom: previous }),
    };
    if (result.verified) return { result };
    return {
      result,
      error: new OffboardingError(
        ErrorCodes.VerificationFailed,
        `Revocation for ${describeUserRef(ref)} returned success, but signInSessionsValidFromDateTime is ${validFrom ?? 'missing'} (before: ${previous ?? 'none'}); retrying.`,
        { retryable: true },
      ),
    };
  }

  private newRecord(
    event: OffboardingEvent,
    delivery: Delivery,
    prior: AuditRecord | undefined,
    startedAt: string,
  ): AuditRecord {
    return {
      eventId: event.id,
      eventType: event.type,
      source: event.source,
      user: event.userAsGiven,
      requestedActions: plannedActions(event),
      actions: [],
      graphRequestIds: [],
      outcome: 'failed',
      notes: [],
      ...(event.reason === undefined ? {} : { reason: event.reason }),
      ...(event.ticket === undefined ? {} : { ticket: event.ticket }),
      dryRun: this.deps.policy.dryRun,
      attempts: Math.max((prior?.attempts ?? 0) + 1, delivery.attempt ?? 1),
      duplicates: prior?.duplicates ?? 0,
      messageId: delivery.messageId,
      firstAttemptAt: prior?.firstAttemptAt ?? startedAt,
      lastAttemptAt: startedAt,
    };
  }

  private async recordInvalid(
    delivery: Delivery,
    error: OffboardingError,
    startedAt: string,
  ): Promise<ProcessResult> {
    // Keyed by the event id when one can be read, else by the message id: still one record.
    const eventId = salvageEventId(delivery.body) ?? `message:${delivery.messageId}`;
    const prior = await this.deps.audit.get(eventId);
    if (prior?.outcome === 'succeeded') {
      // A malformed message reusing the id of an event that succeeded: keep the good record.
      await this.deps.audit.recordDuplicate(eventId, startedAt);
      return { disposition: 'reject', record: prior, duplicate: true, error };
    }
    const record = failureRecord(eventId, delivery.messageId, error, startedAt, {
      dryRun: this.deps.policy.dryRun,
      prior,
    });
    await this.deps.audit.put(record);
    return { disposition: 'reject', record, duplicate: false, error };
  }
}

function digest(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 40);
}

/**
 * The record of an event that failed before its content could be used (invalid input, or a
 * failure that left nothing recorded).
 */
export function failureRecord(
  eventId: string,
  messageId: string,
  error: OffboardingError,
  at: string,
  options: { dryRun: boolean; prior?: AuditRecord | undefined },
): AuditRecord {
  const { prior } = options;
  return {
    eventId,
    requestedActions: [],
    actions: [],
    graphRequestIds: [],
    outcome: 'failed',
    errorCode: error.code,
    errorMessage: error.message,
    retryable: error.retryable,
    notes: [],
    dryRun: options.dryRun,
    attempts: (prior?.attempts ?? 0) + 1,
    duplicates: prior?.duplicates ?? 0,
    messageId,
    firstAttemptAt: prior?.firstAttemptAt ?? at,
    lastAttemptAt: at,
  };
}

function isPermanent(record: AuditRecord): boolean {
  return (
    record.outcome === 'refused' || (record.outcome === 'failed' && record.retryable === false)
  );
}

function errorOf(record: AuditRecord): OffboardingError {
  const code = (record.errorCode ?? ErrorCodes.Unexpected) as OffboardingError['code'];
  return new OffboardingError(code, record.errorMessage ?? 'Failed earlier.', { retryable: false });
}

function refuse(record: AuditRecord, ref: UserRef): ProcessResult {
  const error = new OffboardingError(
    ErrorCodes.ProtectedAccount,
    `${describeUserRef(ref)} is a protected account (PROTECTED_USERS): nothing was changed. Remove it from PROTECTED_USERS only if this is really intended.`,
    { retryable: false },
  );
  record.outcome = 'refused';
  record.actions = record.requestedActions.map((action) => ({ action, status: 'not-attempted' }));
  record.errorCode = error.code;
  record.errorMessage = error.message;
  record.retryable = false;
  return { disposition: 'reject', record, duplicate: false, error };
}

function fail(record: AuditRecord, error: OffboardingError): ProcessResult {
  for (const action of record.requestedActions) {
    if (!record.actions.some((a) => a.action === action)) {
      record.actions.push({ action, status: 'not-attempted' });
    }
  }
  record.outcome = 'failed';
  record.errorCode = error.code;
  record.errorMessage = error.message;
  record.retryable = error.retryable;
  return { disposition: error.retryable ? 'retry' : 'reject', record, duplicate: false, error };
}

function onPremisesMastered(action: ActionName): OffboardingError {
  const what = action === 'disableAccount' ? 'disable the account' : 'reset the password';
  return new OffboardingError(
    ErrorCodes.OnPremisesMastered,
    `The user is synchronised from on-premises Active Directory: ${what} in on-premises AD (the change then syncs to Entra ID). Sessions were still revoked.`,
    { retryable: false },
  );
}

/**
 * One error for the event from its failed actions: retryable if any failure is (a retry may fix
 * that part), waiting at least the longest Retry-After any of them was given.
 */
function combinedError(
  failures: ActionResult[],
  errors: Map<ActionName, OffboardingError>,
): OffboardingError {
  const all = failures.map(
    (f) =>
      errors.get(f.action) ??
      new OffboardingError(
        (f.errorCode ?? ErrorCodes.Unexpected) as OffboardingError['code'],
        f.message ?? '',
        {
          retryable: false,
        },
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
