import { randomUUID } from 'node:crypto';
import { actionSpec, plannedActions, type ActionName } from './actions';
import {
  countDuplicate,
  errorOf,
  invalidMessageRecord,
  isClaimedByOther,
  isPermanent,
  updateRecord,
} from './auditRecords';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { eventKey, invalidMessageKey, stableId } from './eventIdentity';
import {
  EventKinds,
  decodeBody,
  parseEvent,
  salvageEventId,
  type EventKind,
  type LeavingEvent,
  type OffboardingEvent,
} from './events';
import {
  AppMessageIdPrefixes,
  MessageProperties,
  scalarProperties,
  type OutgoingMessage,
  type Scheduler,
} from './messaging';
import { unpaced, type WritePacer } from '../pacing/pacer';
import { generatePassword } from './password';
import type {
  ActionResult,
  AuditLog,
  AuditRecord,
  Directory,
  DirectoryUser,
  RecordKey,
  Verification,
} from './ports';
import { MAX_SCHEDULE_AHEAD_DAYS } from './queuePolicy';
import { retryDelayMs, type RetryPolicy } from './retryPolicy';
import { Routes, routeOfKind, type RouteName } from './routes';
import { describeUserRef, type UserRef } from './userRef';
import type { PolicyConfig } from '../app/config';

/** One delivery of one message, from a Service Bus queue or from the command line. */
export interface Delivery {
  body: unknown;
  /** The route (queue) it came from, or `command` for a run by hand (every kind, no delayed retry). */
  route: RouteName | 'command';
  /** Service Bus MessageId, or a fresh id for a run by hand. */
  messageId: string;
  /** Application properties as sent. Hints only: the audit record decides. */
  properties?: Readonly<Record<string, unknown>>;
  /**
   * The id this run claims the event under: a fresh one, or the one handed over by a run that
   * failed before it could record anything (see QueueProcessor).
   */
  runId?: string;
}

/**
 * - done: finished (succeeded, dry run, duplicate, scheduled, or a later attempt is parked).
 * - retry: a transient failure with no later attempt parked: deliver it again.
 * - reject: a permanent failure (invalid, refused, forbidden, retries exhausted): dead-letter it.
 */
export type Disposition = 'done' | 'retry' | 'reject';

export interface ProcessResult {
  disposition: Disposition;
  record: AuditRecord;
  /** The event had already finished (or was already waiting for its leave date); nothing was done. */
  duplicate: boolean;
  error?: OffboardingError;
  /** A copy parked for a later attempt (transient failure, or waiting for budget or a claim). */
  retry?: { at: string; messageId: string; sequenceNumber: string };
}

export interface OffboardingDeps {
  directory: Directory;
  audit: AuditLog;
  policy: PolicyConfig;
  /** Parks copies: leave dates, delayed retries, deferrals. */
  scheduler: Scheduler;
  /** Queue name of each route (leave dates and retries go back to the event's own queue). */
  queues: Readonly<Record<RouteName, string>>;
  retry: RetryPolicy;
  /** The app-wide Graph write budget; unpaced when absent. */
  pacer?: WritePacer;
  now?: () => Date;
  random?: () => number;
  generatePassword?: typeof generatePassword;
}

/**
 * How long a claim holds an event. Longer than a run can take: the host stops an invocation at
 * host.json's functionTimeout (5 min), and a run starts no Graph write after RUN_BUDGET_MS.
 */
export const CLAIM_LEASE_MS = 6 * 60_000;
/** A run starts no Graph write after this long (each call has its own 45 s bound). */
export const RUN_BUDGET_MS = 3 * 60_000;
/** A delivery that finds the event claimed by another run comes back after about this long. */
const CLAIM_BACKOFF_MS = 15_000;
/** A leave date this close is "now". */
const SCHEDULE_TOLERANCE_MS = 5_000;
/**
 * The copy scheduled for a leave date may arrive this much before it by our clock (Service Bus
 * enqueues it by its own clock). A copy that early or earlier is treated as an HR resend.
 */
const SCHEDULED_COPY_SKEW_MS = 5 * 60_000;

/** What the event asks for, from the action table. */
function actionsOf(event: OffboardingEvent): ActionName[] {
  return plannedActions(
    event.kind === 'employee.leaving' ? { kind: event.kind, flags: event } : event,
  );
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

/** What a claim found. */
type ClaimVerdict = 'claimed' | 'duplicate' | 'busy' | 'permanent-again';

/** The state of one run after its claim: everything the flows need. */
interface Run {
  id: string;
  event: OffboardingEvent;
  key: RecordKey;
  delivery: Delivery;
  startedAt: Date;
  /** The record as it stood before this run (undefined for a new event). */
  prior: AuditRecord | undefined;
  /** The record this run will write at the end. */
  record: AuditRecord;
}

/** What a flow decided, before settlement (delayed retry) and the one final write. */
interface FlowResult {
  disposition: Disposition;
  error?: OffboardingError;
}

export class OffboardingService {
  private readonly now: () => Date;
  private readonly random: () => number;
  private readonly makePassword: typeof generatePassword;
  private readonly pacer: WritePacer;

  constructor(private readonly deps: OffboardingDeps) {
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
    this.makePassword = deps.generatePassword ?? generatePassword;
    this.pacer = deps.pacer ?? unpaced;
  }

  /**
   * Runs one delivery to its audit record. Throws only when the audit store itself fails
   * (AuditUnavailable, retryable): the delivery must then be retried.
   */
  async process(delivery: Delivery): Promise<ProcessResult> {
    const startedAt = this.now();
    const accepts: readonly EventKind[] =
      delivery.route === 'command' ? EventKinds : Routes[delivery.route].accepts;
    let event: OffboardingEvent;
    try {
      event = parseEvent(delivery.body, accepts);
    } catch (error) {
      return this.recordInvalid(delivery, toOffboardingError(error), startedAt);
    }

    const runId = delivery.runId ?? randomUUID();
    const actions = actionsOf(event);
    const key = eventKey(event, actions);
    let prior: AuditRecord | undefined;
    const claim = await updateRecord<ClaimVerdict>(this.deps.audit, key, (current) => {
      prior = current;
      return this.decideClaim(current, { event, key, actions, delivery, runId, startedAt });
    });
    const claimed = claim.record;
    if (claimed === undefined) throw new Error('A claim always leaves a record.');

    switch (claim.verdict) {
      case 'duplicate':
        return { disposition: 'done', record: claimed, duplicate: true };
      case 'permanent-again':
        // A redelivery of a message already judged permanently failed: no Graph call, straight on
        // towards the dead-letter queue. A replay (new message id) or a run by hand goes through.
        return {
          disposition: 'reject',
          record: claimed,
          duplicate: false,
          error: errorOf(claimed),
        };
      case 'busy':
        return this.backOff(claimed, delivery, startedAt);
      case 'claimed':
        break;
    }

    const run: Run = {
      id: runId,
      event,
      key,
      delivery,
      startedAt,
      prior,
      record: this.freshAttempt(claimed, event, actions, delivery, startedAt, prior),
    };
    if (prior === undefined) await this.noteReusedId(run);
    if (prior?.claimedBy === runId) {
      // Handed over by a run that claimed the event and then could not record its end.
      run.record.attempts += 1;
      run.record.notes.push(
        'An earlier run ended without recording its result (the audit store was unavailable); anything it did is done again by this run.',
      );
    }

    let flow: FlowResult;
    if (event.kind === 'employee.leaving.cancelled') flow = await this.cancelDeparture(run);
    else if (event.kind === 'employee.leaving' && this.isForLater(event, run))
      flow = await this.scheduleDeparture(event, run);
    else flow = await this.perform(run);
    return this.finish(run, flow);
  }

  /** Decides, from the stored record, whether this delivery may run the event now. */
  private decideClaim(
    current: AuditRecord | undefined,
    ctx: {
      event: OffboardingEvent;
      key: RecordKey;
      actions: ActionName[];
      delivery: Delivery;
      runId: string;
      startedAt: Date;
    },
  ): { next?: AuditRecord; verdict: ClaimVerdict } {
    const { event, delivery, runId, startedAt } = ctx;
    const at = startedAt.toISOString();
    const lease = {
      claimedBy: runId,
      claimExpiresAt: new Date(startedAt.getTime() + CLAIM_LEASE_MS).toISOString(),
    };
    if (current === undefined) {
      return {
        next: { ...this.newRecord(event, ctx.key, ctx.actions, delivery, at), ...lease },
        verdict: 'claimed',
      };
    }
    if (current.outcome === 'succeeded' || current.outcome === 'cancelled') {
      return { next: countDuplicate(current, at), verdict: 'duplicate' };
    }
    if (isClaimedByOther(current, runId, startedAt)) return { verdict: 'busy' };
    if (
      current.outcome === 'scheduled' &&
      event.kind === 'employee.leaving' &&
      this.isForLater(event, { prior: current, delivery })
    ) {
      // The same departure again before its date (HR resent it): it is already waiting.
      return { next: countDuplicate(current, at), verdict: 'duplicate' };
    }
    if (isPermanent(current) && current.messageId === delivery.messageId) {
      return {
        next: { ...current, attempts: current.attempts + 1, lastAttemptAt: at },
        verdict: 'permanent-again',
      };
    }
    return { next: { ...current, ...lease, lastAttemptAt: at }, verdict: 'claimed' };
  }

  /**
   * Whether a departure's leave date is still ahead. The copy the app scheduled for the date is
   * recognised by the audit record (scheduled, same date) plus its property, and may arrive a few
   * minutes early by our clock; a property on any other message changes nothing.
   */
  private isForLater(
    event: LeavingEvent,
    run: { prior: AuditRecord | undefined; delivery: Delivery },
  ): boolean {
    if (event.effectiveAt === undefined) return false;
    const due = Date.parse(event.effectiveAt);
    const now = this.now().getTime();
    if (due <= now + SCHEDULE_TOLERANCE_MS) return false;
    const scheduledCopy =
      run.prior?.outcome === 'scheduled' &&
      run.delivery.properties?.[MessageProperties.scheduledFor] !== undefined &&
      now >= due - SCHEDULED_COPY_SKEW_MS;
    return !scheduledCopy;
  }

  /** Another run holds the event: come back later, without using up an attempt. */
  private async backOff(
    claimed: AuditRecord,
    delivery: Delivery,
    startedAt: Date,
  ): Promise<ProcessResult> {
    const until = Date.parse(claimed.claimExpiresAt ?? startedAt.toISOString());
    const waitMs = Math.max(1_000, Math.min(until - startedAt.getTime(), CLAIM_BACKOFF_MS));
    const error = new OffboardingError(
      ErrorCodes.Deferred,
      `Another delivery of this event is running it (claimed until ${claimed.claimExpiresAt ?? 'unknown'}); this one waits.`,
      { retryable: true, retryAfterSeconds: waitMs / 1000 },
    );
    const retry = await this.park(delivery, claimed, {
      kind: 'deferral',
      waitMs: waitMs * (0.75 + this.random() * 0.5),
    });
    return {
      disposition: retry === undefined ? 'retry' : 'done',
      record: claimed,
      duplicate: false,
      error,
      ...(retry === undefined ? {} : { retry }),
    };
  }

  /** Notes on a new record that its event id was used before for other content. */
  private async noteReusedId(run: Run): Promise<void> {
    const siblings = (await this.deps.audit.listIdentity(run.key.identityKey)).filter(
      (r) => r.contentDigest !== run.key.contentDigest,
    );
    if (siblings.length === 0) return;
    run.record.idReused = true;
    run.record.notes.push(
      `Event id "${run.event.id}" from source "${run.event.source}" was used before for different content (${siblings.length} other record(s)); this event was processed on its own and the earlier one was left as it was. Ask the sender to use a unique id per event (CloudEvents: source + id).`,
    );
  }

  /** Resolves the user (an unknown or protected user fails now, not on the leave date). */
  private async resolve(run: Run): Promise<{ user: DirectoryUser } | { flow: FlowResult }> {
    const { policy, directory } = this.deps;
    const { event, record } = run;
    if (isProtected(policy, event.user.value)) return { flow: refuse(record, event.user) };
    let user: DirectoryUser;
    try {
      const read = await directory.getUser(event.user);
      user = read.user;
      if (read.requestId) record.graphRequestIds.push(read.requestId);
    } catch (error) {
      return { flow: fail(record, toOffboardingError(error)) };
    }
    record.objectId = user.id;
    record.userPrincipalName = user.userPrincipalName;
    if (isProtected(policy, user.id, user.userPrincipalName))
      return { flow: refuse(record, event.user) };
    return { user };
  }

  private async scheduleDeparture(event: LeavingEvent, run: Run): Promise<FlowResult> {
    const { record } = run;
    const effectiveAt = event.effectiveAt as string;
    const at = new Date(effectiveAt);
    const horizon = this.now().getTime() + MAX_SCHEDULE_AHEAD_DAYS * 86_400_000;
    if (at.getTime() > horizon) {
      return fail(
        record,
        new OffboardingError(
          ErrorCodes.InvalidEvent,
          `data.effectiveAt ${effectiveAt} is more than ${MAX_SCHEDULE_AHEAD_DAYS} days ahead; publish the departure closer to the date.`,
          { retryable: false },
        ),
      );
    }
    const resolved = await this.resolve(run);
    if ('flow' in resolved) return resolved.flow;
    record.effectiveAt = effectiveAt;
    record.actions = record.requestedActions.map((action) => ({ action, status: 'not-attempted' }));
    try {
      record.scheduledSequenceNumber = await this.deps.scheduler.schedule(
        this.deps.queues.employeeLeaving,
        // Deterministic: if we crash before completing, the re-scheduled copy is a duplicate
        // that Service Bus drops.
        this.copyOf(
          run.delivery,
          `${AppMessageIdPrefixes.leaveDate}${stableId(run.key.identityKey, run.key.contentDigest)}`,
          {
            [MessageProperties.scheduledFor]: effectiveAt,
          },
        ),
        at,
      );
    } catch (error) {
      return fail(record, toOffboardingError(error));
    }
    record.outcome = 'scheduled';
    record.notes.push(
      `Scheduled for the leave date ${effectiveAt} (sequence number ${record.scheduledSequenceNumber}).`,
    );
    if (this.deps.policy.dryRun) {
      record.notes.push(
        'DRY_RUN is on now; the departure runs in whatever mode is set on the leave date.',
      );
    }
    return { disposition: 'done' };
  }

  /**
   * employee.leaving.cancelled: cancels every departure still waiting for this user. A departure
   * is marked cancelled only while it is still waiting and unclaimed (a conditional write), so a
   * cancellation that loses the race to the leave-date copy says so instead of claiming success.
   */
  private async cancelDeparture(run: Run): Promise<FlowResult> {
    const { record, event } = run;
    const resolved = await this.resolve(run);
    if ('flow' in resolved) return resolved.flow;
    const { audit, scheduler, queues } = this.deps;
    // By object id and by UPN: a departure given by UPN that is running now has no object id
    // on its record yet, and must not be missed.
    const { user } = resolved;
    const found = [
      ...(await audit.findByUser(user.id)),
      ...(await audit.findByUser(user.userPrincipalName)),
    ];
    const history = found.filter(
      (stored, i) =>
        found.findIndex(
          (other) =>
            other.record.identityKey === stored.record.identityKey &&
            other.record.contentDigest === stored.record.contentDigest,
        ) === i,
    );
    const now = this.now();
    // Departures that started or finished: too late to cancel, and the audit must say so.
    const underway: AuditRecord[] = [];
    let cancelledAny = false;
    for (const { record: departure } of history) {
      if (!isDeparture(departure)) continue;
      const result = await updateRecord<'cancelled' | 'underway' | 'not-applicable'>(
        audit,
        departure,
        (current) => {
          if (current === undefined) return { verdict: 'not-applicable' };
          if (current.outcome !== 'scheduled' || isClaimedByOther(current, run.id, now))
            return { verdict: isUnderway(current, now) ? 'underway' : 'not-applicable' };
          return {
            next: {
              ...current,
              outcome: 'cancelled',
              notes: [...current.notes, `Cancelled by event ${event.id} at ${now.toISOString()}.`],
            },
            verdict: 'cancelled',
          };
        },
      );
      if (result.verdict === 'underway') underway.push(result.record ?? departure);
      if (result.verdict !== 'cancelled') continue;
      cancelledAny = true;
      record.notes.push(
        `Cancelled departure ${departure.eventId} (leave date ${departure.effectiveAt ?? 'unknown'}).`,
      );
      // The record already says cancelled, so a copy that is enqueued anyway does nothing; taking
      // the scheduled message off the queue is tidiness, not safety.
      if (departure.scheduledSequenceNumber !== undefined) {
        try {
          await scheduler.cancel(queues.employeeLeaving, departure.scheduledSequenceNumber);
        } catch (error) {
          record.notes.push(
            `The scheduled message of ${departure.eventId} could not be removed (${toOffboardingError(error).code}); it will be skipped when it arrives.`,
          );
        }
      }
    }
    if (!cancelledAny) {
      const last = underway[underway.length - 1];
      if (last !== undefined) {
        return fail(
          record,
          new OffboardingError(
            ErrorCodes.DepartureAlreadyExecuted,
            `No departure was waiting: event ${last.eventId} ${last.outcome === 'succeeded' ? `already offboarded this user at ${last.lastAttemptAt}` : 'is being carried out now'}. Re-enable the account by hand if the person stays.`,
            { retryable: false },
          ),
        );
      }
      record.notes.push('No pending departure was found for this user; nothing to cancel.');
    }
    record.outcome = 'succeeded';
    return { disposition: 'done' };
  }

  /** Runs the event's actions against Graph and proves the revocation. */
  private async perform(run: Run): Promise<FlowResult> {
    const { policy } = this.deps;
    const { record, prior, event } = run;
    const resolved = await this.resolve(run);
    if ('flow' in resolved) return resolved.flow;
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
        synced && actionSpec(action).masteredOnPremises
          ? failureOf(action, onPremisesMastered(action))
          : { action, status: 'would-run' },
      );
      record.outcome = 'dry-run';
      record.notes.push('DRY_RUN is on: nothing was written to Microsoft Graph.');
      return { disposition: 'done' };
    }

    // Progress of an earlier attempt counts only for the same directory object: a UPN can be
    // renamed or reused between attempts.
    const earlierProgress = prior?.objectId === user.id ? prior.actions : [];
    const toRun: ActionName[] = [];
    for (const action of record.requestedActions) {
      const earlier = earlierProgress.find((a) => a.action === action && a.status === 'succeeded');
      if (earlier && !actionSpec(action).repeatEachAttempt) {
        // Done by an earlier attempt of this event; do not reset a password twice.
        record.actions.push({ ...earlier, message: 'Done in an earlier attempt.' });
      } else if (synced && actionSpec(action).masteredOnPremises) {
        record.actions.push(failureOf(action, onPremisesMastered(action)));
      } else {
        toRun.push(action);
      }
    }

    try {
      await this.pacer.reserve(Routes[routeOfKind(event.kind)].lane, toRun.length);
    } catch (error) {
      // No budget now: nothing was written; the event waits without using up an attempt.
      record.actions = [];
      return fail(record, toOffboardingError(error));
    }

    // Errors of this run's failed actions, kept to decide retryability and Retry-After.
    const errors = new Map<ActionName, OffboardingError>();
    for (const action of toRun) {
      const overdue = this.now().getTime() - run.startedAt.getTime() > RUN_BUDGET_MS;
      if (overdue) {
        const error = new OffboardingError(
          ErrorCodes.GraphUnavailable,
          `This run used its ${RUN_BUDGET_MS / 1000} s budget before ${action}; the rest is retried.`,
          { retryable: true },
        );
        errors.set(action, error);
        record.actions.push(failureOf(action, error));
        continue;
      }
      record.actions.push(await this.write(action, user.id, record, errors));
    }
    record.actions.sort(
      (a, b) =>
        record.requestedActions.indexOf(a.action) - record.requestedActions.indexOf(b.action),
    );

    const revoked = record.actions.find((a) => a.action === 'revokeSignInSessions');
    if (revoked?.status === 'succeeded') {
      const verification = await this.verify(event.user, user, record);
      record.verification = verification.result;
      if (verification.error) return fail(record, verification.error);
    }

    const failures = record.actions.filter((a) => a.status === 'failed');
    if (failures.length === 0) {
      record.outcome = 'succeeded';
      return { disposition: 'done' };
    }
    return fail(record, combinedError(failures, errors));
  }

  private async write(
    action: ActionName,
    userId: string,
    record: AuditRecord,
    errors: Map<ActionName, OffboardingError>,
  ): Promise<ActionResult> {
    const { directory } = this.deps;
    try {
      const call = await actionSpec(action).run(directory, userId, this.makePassword);
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

  /**
   * Settlement and the one final write. A transient failure from a queue parks a copy for the next
   * attempt (or, after RETRY_MAX_ATTEMPTS, becomes permanent); a deferral parks one without using
   * up an attempt. Then the record is written once, over whatever duplicates were counted
   * meanwhile, and the claim is released.
   */
  private async finish(run: Run, flow: FlowResult): Promise<ProcessResult> {
    const { record, delivery } = run;
    let { disposition, error } = flow;
    const deferred = error?.code === ErrorCodes.Deferred;
    if (deferred) {
      // Nothing was written: keep the previous outcome and attempt count, only note the wait.
      record.outcome = run.prior?.outcome ?? 'in-progress';
      record.attempts = run.prior?.attempts ?? 0;
      record.actions = run.prior?.actions ?? [];
    }
    let retry: ProcessResult['retry'];
    if (disposition === 'retry' && error !== undefined) {
      if (!deferred && record.attempts >= this.deps.retry.maxAttempts) {
        error = new OffboardingError(
          ErrorCodes.RetriesExhausted,
          `Gave up after ${record.attempts} attempts; last error ${error.code}: ${error.message}`,
          { retryable: false },
        );
        setError(record, error);
        disposition = 'reject';
      } else if (delivery.route !== 'command') {
        const waitMs = deferred
          ? (error.retryAfterSeconds ?? 1) * 1000 * (1 + this.random() * 0.25)
          : retryDelayMs(
              this.deps.retry,
              record.attempts + 1,
              error.retryAfterSeconds,
              this.random,
            );
        retry = await this.park(delivery, record, {
          kind: deferred ? 'deferral' : 'retry',
          waitMs,
        });
        if (retry !== undefined) {
          record.nextAttemptAt = retry.at;
          disposition = 'done';
        }
      }
    }
    if (retry === undefined) delete record.nextAttemptAt;

    const written = await updateRecord(this.deps.audit, run.key, (current) => {
      const next: AuditRecord = {
        ...record,
        duplicates: current?.duplicates ?? record.duplicates,
        ...(current?.lastDuplicateAt === undefined
          ? {}
          : { lastDuplicateAt: current.lastDuplicateAt }),
      };
      delete next.claimedBy;
      delete next.claimExpiresAt;
      if (current?.claimedBy !== undefined && current.claimedBy !== run.id) {
        // Our lease ran out and another run took the event over: keep its claim, say what we did.
        next.claimedBy = current.claimedBy;
        if (current.claimExpiresAt !== undefined) next.claimExpiresAt = current.claimExpiresAt;
        next.notes = [...next.notes, 'This run outlived its claim; a later run holds the event.'];
      }
      return { next, verdict: undefined };
    });
    return {
      disposition,
      record: written.record ?? record,
      duplicate: false,
      ...(error === undefined ? {} : { error }),
      ...(retry === undefined ? {} : { retry }),
    };
  }

  /**
   * Parks a copy of the message on its queue for later; undefined when Service Bus would not take
   * it (the caller then lets Service Bus redeliver). Retry copies have deterministic ids (a crash
   * before completion does not park two); deferrals do not use up an attempt.
   */
  private async park(
    delivery: Delivery,
    record: AuditRecord,
    plan: { kind: 'retry' | 'deferral'; waitMs: number },
  ): Promise<ProcessResult['retry']> {
    if (delivery.route === 'command' || record.route === undefined) return undefined;
    const route = record.route as RouteName;
    const at = new Date(this.now().getTime() + plan.waitMs);
    // One retry copy per received message, whatever happens: a redelivery of the same message
    // (a crash before completion) parks the same id, which duplicate detection drops.
    const messageId =
      plan.kind === 'retry'
        ? `${AppMessageIdPrefixes.retry}${stableId(record.identityKey, record.contentDigest, delivery.messageId)}`
        : `${AppMessageIdPrefixes.wait}${stableId(record.identityKey, record.contentDigest, randomUUID())}`;
    try {
      const sequenceNumber = await this.deps.scheduler.schedule(
        this.deps.queues[route],
        this.copyOf(delivery, messageId, {
          [MessageProperties.attempt]: record.attempts + (plan.kind === 'retry' ? 1 : 0),
        }),
        at,
      );
      return { at: at.toISOString(), messageId, sequenceNumber };
    } catch {
      return undefined;
    }
  }

  /** A copy of the delivered event for the same queue, keeping its scalar properties. */
  private copyOf(
    delivery: Delivery,
    messageId: string,
    properties: Record<string, string | number>,
  ): OutgoingMessage {
    const carried = delivery.properties?.[MessageProperties.originalMessageId];
    // A claim handed over after an audit outage belongs to that one copy, never to later ones.
    const kept = scalarProperties(delivery.properties ?? {});
    delete kept[MessageProperties.claimHandover];
    return {
      body: decodeBody(delivery.body),
      messageId,
      contentType: 'application/json',
      applicationProperties: {
        ...kept,
        [MessageProperties.originalMessageId]:
          typeof carried === 'string' ? carried : delivery.messageId,
        ...properties,
      },
    };
  }

  /** The record this run starts from: the stored one with a fresh attempt, or a new one. */
  private freshAttempt(
    claimed: AuditRecord,
    event: OffboardingEvent,
    actions: ActionName[],
    delivery: Delivery,
    startedAt: Date,
    prior: AuditRecord | undefined,
  ): AuditRecord {
    const at = startedAt.toISOString();
    const fresh = this.newRecord(event, claimed, actions, delivery, at);
    return {
      ...fresh,
      attempts: (prior?.attempts ?? 0) + 1,
      duplicates: claimed.duplicates,
      ...(claimed.lastDuplicateAt === undefined
        ? {}
        : { lastDuplicateAt: claimed.lastDuplicateAt }),
      ...(prior?.idReused ? { idReused: true } : {}),
      // A departure keeps its leave date and the message holding it through later attempts.
      ...(prior?.effectiveAt === undefined ? {} : { effectiveAt: prior.effectiveAt }),
      ...(prior?.scheduledSequenceNumber === undefined
        ? {}
        : { scheduledSequenceNumber: prior.scheduledSequenceNumber }),
      firstAttemptAt: claimed.firstAttemptAt,
    };
  }

  private newRecord(
    event: OffboardingEvent,
    key: RecordKey,
    actions: ActionName[],
    delivery: Delivery,
    at: string,
  ): AuditRecord {
    return {
      identityKey: key.identityKey,
      contentDigest: key.contentDigest,
      eventId: event.id,
      eventType: event.type,
      source: event.source,
      route: routeOfKind(event.kind),
      user: event.userAsGiven,
      requestedActions: actions,
      actions: [],
      graphRequestIds: [],
      outcome: 'in-progress',
      notes: [],
      ...(event.reason === undefined ? {} : { reason: event.reason }),
      ...(event.ticket === undefined ? {} : { ticket: event.ticket }),
      dryRun: this.deps.policy.dryRun,
      attempts: 0,
      duplicates: 0,
      messageId: delivery.messageId,
      firstAttemptAt: at,
      lastAttemptAt: at,
    };
  }

  /** An invalid message gets a record of its own (keyed by message id), never another event's. */
  private async recordInvalid(
    delivery: Delivery,
    error: OffboardingError,
    startedAt: Date,
  ): Promise<ProcessResult> {
    // Keyed by the first message's id: the copies the app parked for it share its record.
    const original = delivery.properties?.[MessageProperties.originalMessageId];
    const key = invalidMessageKey(
      delivery.route,
      typeof original === 'string' ? original : delivery.messageId,
    );
    const at = startedAt.toISOString();
    const fields = {
      eventId: salvageEventId(delivery.body) ?? `message:${delivery.messageId}`,
      route: delivery.route,
      messageId: delivery.messageId,
      dryRun: this.deps.policy.dryRun,
    };
    const written = await updateRecord(this.deps.audit, key, (current) => ({
      next: invalidMessageRecord(key, fields, error, at, current),
      verdict: undefined,
    }));
    const record = written.record ?? invalidMessageRecord(key, fields, error, at, undefined);
    return { disposition: 'reject', record, duplicate: false, error };
  }
}

/** A departure that ran or is running (claimed now, or failed and retrying). */
function isUnderway(record: AuditRecord, now: Date): boolean {
  if (record.outcome === 'succeeded') return true;
  if (record.claimedBy !== undefined && Date.parse(record.claimExpiresAt ?? '') > now.getTime())
    return true;
  return (
    (record.outcome === 'failed' && record.retryable === true) || record.outcome === 'in-progress'
  );
}

function isDeparture(record: AuditRecord): boolean {
  return (
    record.route === 'employeeLeaving' &&
    record.eventType !== undefined &&
    /(^|\.)employee\.leaving$/.test(record.eventType)
  );
}

function setError(record: AuditRecord, error: OffboardingError): void {
  record.errorCode = error.code;
  record.errorMessage = error.message;
  record.retryable = error.retryable;
}

function refuse(record: AuditRecord, ref: UserRef): FlowResult {
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

function fail(record: AuditRecord, error: OffboardingError): FlowResult {
  for (const action of record.requestedActions) {
    if (!record.actions.some((a) => a.action === action)) {
      record.actions.push({ action, status: 'not-attempted' });
    }
  }
  record.outcome = 'failed';
  setError(record, error);
  return { disposition: error.retryable ? 'retry' : 'reject', error };
}

function onPremisesMastered(action: ActionName): OffboardingError {
  return new OffboardingError(
    ErrorCodes.OnPremisesMastered,
    `The user is synchronised from on-premises Active Directory: ${actionSpec(action).label} in on-premises AD (the change then syncs to Entra ID). Sessions were still revoked.`,
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
