import { randomUUID } from 'node:crypto';
import { plannedActions, type ActionName } from './actions';
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
import { describeUserRef } from './userRef';
import { perform } from './actionRun';
export { RUN_BUDGET_MS } from './actionRun';
import { cancelDeparture, scheduleDeparture } from './departures';
import { reinstate } from './reinstate';
import {
  deliverFinal,
  fail,
  isProtected,
  refuse,
  setError,
  type FlowContext,
  type FlowResult,
  type Run,
} from './flow';
import {
  decidedBy,
  guardrailOf,
  type EventDecision,
  type Guardrail,
  type GuardrailTrip,
} from './guardrail';
import { generatePassword } from './password';
import type {
  AuditLog,
  AuditRecord,
  Directory,
  PolicyConfig,
  DirectoryUser,
  FinalRecordSink,
  RecordKey,
} from './ports';
import { retryDelayMs, type RetryPolicy } from './retryPolicy';
import { Routes, routeOfKind, type RouteName } from './routes';

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
  /**
   * `offboard reinstate --force`: reinstate an account the audit does not show this app disabled.
   * Only a run by hand (route `command`) sets it; a queue message never can.
   */
  force?: boolean;
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
  /** This event tripped the blast-radius guardrail (the alert fires on it). */
  guardrailTrip?: GuardrailTrip;
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
  /** Told of every final record after it is written (immutable log, outcome topic). */
  finalSinks?: readonly FinalRecordSink[];
  /** The blast-radius guardrail (shared by every instance); none when absent. */
  guardrail?: Guardrail;
  now?: () => Date;
  random?: () => number;
  generatePassword?: typeof generatePassword;
}

/**
 * How long a claim holds an event. Longer than a run can take: the host stops an invocation at
 * host.json's functionTimeout (5 min), and a run starts no Graph write after RUN_BUDGET_MS.
 */
export const CLAIM_LEASE_MS = 6 * 60_000;
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
export function actionsOf(event: OffboardingEvent): ActionName[] {
  return plannedActions(
    event.kind === 'employee.leaving' ? { kind: event.kind, flags: event } : event,
  );
}

/** What a claim found. */
type ClaimVerdict =
  | 'claimed'
  | 'duplicate'
  | 'busy'
  | 'permanent-again'
  /** Held by the guardrail: whether an operator decided about it is read next. */
  | 'held'
  /** Held, and an operator discarded it: now final. */
  | 'discarded';

export class OffboardingService {
  private readonly now: () => Date;
  private readonly random: () => number;
  private readonly makePassword: typeof generatePassword;
  private readonly pacer: WritePacer;
  private readonly ctx: FlowContext;

  constructor(private readonly deps: OffboardingDeps) {
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
    this.makePassword = deps.generatePassword ?? generatePassword;
    this.pacer = deps.pacer ?? unpaced;
    this.ctx = {
      deps,
      now: this.now,
      pacer: this.pacer,
      makePassword: this.makePassword,
      resolve: (run) => this.resolve(run),
      copyOf: (delivery, messageId, properties) => this.copyOf(delivery, messageId, properties),
    };
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
    let decision: EventDecision | 'unknown' | undefined = 'unknown';
    const claimIt = () =>
      updateRecord<ClaimVerdict>(this.deps.audit, key, (current) => {
        prior = current;
        return this.decideClaim(current, {
          event,
          key,
          actions,
          delivery,
          runId,
          startedAt,
          decision,
        });
      });
    let claim = await claimIt();
    if (claim.verdict === 'held') {
      // Held for an operator: only held events pay this read (the guardrail's own table).
      decision = await this.deps.guardrail?.decisionFor(guardrailOf(event.kind), key);
      claim = await claimIt();
    }
    const claimed = claim.record;
    if (claimed === undefined) throw new Error('A claim always leaves a record.');

    switch (claim.verdict) {
      case 'duplicate':
        // A final record is given to the sinks again: the first delivery may have failed to.
        return this.delivered(delivery, { disposition: 'done', record: claimed, duplicate: true });
      case 'permanent-again':
        // A redelivery of a message already judged permanently failed: no Graph call, straight on
        // towards the dead-letter queue. A replay (new message id) or a run by hand goes through.
        return this.delivered(delivery, {
          disposition: 'reject',
          record: claimed,
          duplicate: false,
          error: errorOf(claimed),
        });
      case 'busy':
        return this.backOff(claimed, delivery, startedAt);
      case 'discarded':
        return this.delivered(delivery, { disposition: 'done', record: claimed, duplicate: false });
      case 'held':
        throw new Error('A held event is decided once its operator decision was read.');
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
      ...(decision !== 'unknown' && decision?.kind === 'release' ? { release: decision } : {}),
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
    if (event.kind === 'employee.leaving.cancelled') flow = await cancelDeparture(this.ctx, run);
    else if (event.kind === 'employee.leaving' && this.isForLater(event, run))
      flow = await scheduleDeparture(this.ctx, event, run);
    else if (event.kind === 'employee.reinstated') flow = await reinstate(this.ctx, event, run);
    else flow = await perform(this.ctx, run);
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
      /** An operator's decision about a held event ('unknown': not read yet). */
      decision: EventDecision | 'unknown' | undefined;
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
    if (
      current.outcome === 'succeeded' ||
      current.outcome === 'cancelled' ||
      current.outcome === 'discarded'
    ) {
      return { next: countDuplicate(current, at), verdict: 'duplicate' };
    }
    if (current.outcome === 'held' && !isClaimedByOther(current, runId, startedAt)) {
      // Held for an operator: it runs once released, ends once discarded; until then a delivery
      // (a resend, the operator's copy before the decision is readable) changes nothing.
      const { decision } = ctx;
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
    const earlierObject = run.prior?.objectId;
    if (earlierObject !== undefined && earlierObject.toLowerCase() !== user.id.toLowerCase()) {
      // Acting on whoever holds the UPN now could disable or reset the wrong person.
      record.objectId = earlierObject;
      return {
        flow: fail(
          record,
          new OffboardingError(
            ErrorCodes.UserChanged,
            `${describeUserRef(event.user)} now names object ${user.id}, but an earlier attempt of this event resolved it to ${earlierObject}: nothing was written. Check who is leaving and resend the event with the object id.`,
            { retryable: false },
          ),
        ),
      };
    }
    record.objectId = user.id;
    record.userPrincipalName = user.userPrincipalName;
    if (isProtected(policy, user.id, user.userPrincipalName))
      return { flow: refuse(record, event.user) };
    return { user };
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
    return this.delivered(delivery, {
      disposition,
      record: written.record ?? record,
      duplicate: false,
      ...(error === undefined ? {} : { error }),
      ...(retry === undefined ? {} : { retry }),
      ...(flow.trip === undefined ? {} : { guardrailTrip: flow.trip }),
    });
  }

  /**
   * Gives a final record to the sinks (immutable log, outcome topic). If one fails, the record
   * stays as written and a copy of the message is parked for later (about a minute; no attempt used):
   * it finds the record final and gives it again, however long the sink is down. When no copy can
   * be parked (a run by hand, Service Bus down), and for a permanent failure, the delivery is
   * retried as it is.
   */
  private async delivered(delivery: Delivery, result: ProcessResult): Promise<ProcessResult> {
    try {
      await deliverFinal(this.deps.finalSinks ?? [], result.record);
      return result;
    } catch (thrown) {
      const error = toOffboardingError(thrown);
      // A permanent failure is redelivered as it is: each redelivery gives the record again, and
      // the last one goes to the dead-letter queue, where it was heading anyway.
      if (result.disposition === 'reject') return { ...result, disposition: 'retry', error };
      // The retry policy's second delay (about a minute with the defaults), jittered.
      const retry = await this.park(delivery, result.record, {
        kind: 'deferral',
        waitMs: retryDelayMs(this.deps.retry, 3, error.retryAfterSeconds, this.random),
      });
      return retry === undefined
        ? { ...result, disposition: 'retry', error }
        : { ...result, disposition: 'done', error, retry };
    }
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
      // What the guardrail counted, held or released stays with the event.
      ...(prior?.guardrail === undefined ? {} : { guardrail: prior.guardrail }),
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
    return this.delivered(delivery, { disposition: 'reject', record, duplicate: false, error });
  }
}
