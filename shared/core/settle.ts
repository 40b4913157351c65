import { randomUUID } from 'node:crypto';
import { updateRecord } from './auditRecords';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { stableId } from './eventIdentity';
import { decodeBody } from './events';
import { deliverFinal, setError } from './flow';
import { assertMove, isFinal } from './lifecycle';
import { admitIntent } from './personTimeline';
import {
  AppMessageIdPrefixes,
  MessageProperties,
  scalarProperties,
  type OutgoingMessage,
} from './messaging';
import type { AuditRecord } from './ports';
import {
  DEFAULT_GIVE_UP_AFTER_MINUTES,
  DEFAULT_OVERDUE_AFTER_MINUTES,
  isServiceWait,
  retryDelayMs,
} from './retryPolicy';
import type { RouteName } from './routes';
import { planSignInWatch } from './signInWatchRun';
import type { Delivery, FlowResult, OffboardingDeps, ProcessResult, Run } from './run';

/*
 * Settlement and the one final write of a run: a transient failure parks a copy for the next
 * attempt, a departure past its due time is announced as delayed, the record is written once and
 * the sinks are told.
 */

/** A delivery that finds the event claimed by another run comes back after about this long. */
const CLAIM_BACKOFF_MS = 15_000;

export interface SettleContext {
  deps: OffboardingDeps;
  now: () => Date;
  random: () => number;
}

/** When a departure is due: its leave date, else when the app first saw it. */
export function dueTimeOf(record: Pick<AuditRecord, 'effectiveAt' | 'firstAttemptAt'>): string {
  return record.effectiveAt ?? record.firstAttemptAt;
}

function dueAt(record: AuditRecord): number {
  return Date.parse(dueTimeOf(record));
}

/**
 * Whether a transient failure ends the event. A departure (the departures route) ends only once it
 * is still failing giveUpAfterMinutes past its due time; any event does, and an MFA event also
 * after maxAttempts attempts (waits the service asked for use none).
 */
function givesUp(
  ctx: SettleContext,
  record: AuditRecord,
  error: OffboardingError,
): string | undefined {
  const { retry } = ctx.deps;
  const limitMinutes = retry.giveUpAfterMinutes ?? DEFAULT_GIVE_UP_AFTER_MINUTES;
  const lateMs = ctx.now().getTime() - dueAt(record);
  if (lateMs > limitMinutes * 60_000)
    return `still failing ${Math.round(lateMs / 60_000)} minutes after it was due (limit ${limitMinutes} minutes)`;
  if (record.route === 'employeeLeaving' || isServiceWait(error)) return undefined;
  const used = record.attempts - (record.waits ?? 0);
  return used >= retry.maxAttempts ? `after ${used} attempts` : undefined;
}

/** A departure past its due time by overdueAfterMinutes. */
function isOverdue(ctx: SettleContext, record: AuditRecord): boolean {
  const minutes = ctx.deps.retry.overdueAfterMinutes ?? DEFAULT_OVERDUE_AFTER_MINUTES;
  return (
    record.route === 'employeeLeaving' && ctx.now().getTime() - dueAt(record) > minutes * 60_000
  );
}

/**
 * A run that failed before it got to an action never erases what earlier attempts did: their
 * result stays (a write that was made, or one that failed and may have reached Graph). An earlier
 * run that claimed the event and never recorded its end (a crash, a lost audit write) may have
 * written: such an action is unknown, never "not attempted". An HR intent knows better from the
 * person's timeline (the commit point precedes every write), once this run reached it.
 */
function keepEarlierWrites(run: Run): void {
  const earlier = run.prior;
  if (earlier === undefined) return;
  const unrecorded = earlier.claimedBy !== undefined && run.admission === undefined;
  run.record.actions = run.record.actions.map((a) => {
    if (a.status !== 'not-attempted') return a;
    const before = earlier.actions.find(
      (e) => e.action === a.action && (e.status === 'succeeded' || e.status === 'failed'),
    );
    if (before !== undefined)
      return { ...before, message: `From an earlier attempt: ${before.message ?? before.status}` };
    if (!unrecorded) return a;
    return {
      action: a.action,
      status: 'failed',
      errorCode: ErrorCodes.WriteOutcomeUnknown,
      message: `An earlier run of this event (last attempt ${earlier.lastAttemptAt}) ended without recording whether it made this write; this run did not get to it.`,
    };
  });
}

/**
 * An event checked against the person's timeline that never reached its commit point (held,
 * deferred, scheduled for later, a dry run, failed before writing) is put on the timeline now,
 * before its record: later events are decided against it. A superseded one need not be (a later
 * intent is there). A failure throws, like a failed audit write: the delivery comes back.
 */
async function admitPending(ctx: SettleContext, run: Run): Promise<void> {
  const admission = run.admission;
  const personId = run.record.objectId;
  if (admission?.pending !== true || personId === undefined) return;
  if (run.record.outcome === 'superseded') return;
  await admitIntent(
    ctx.deps.timelines,
    personId,
    admission.intent,
    admission.seen,
    admission.version,
  );
  run.admission = { ...admission, pending: false };
}

/** Settles a run and writes its record once. */
export async function finish(
  ctx: SettleContext,
  run: Run,
  flow: FlowResult,
): Promise<ProcessResult> {
  const { record, delivery } = run;
  await admitPending(ctx, run);
  let { disposition, error } = flow;
  const deferred = error?.code === ErrorCodes.Deferred;
  if (deferred) {
    // Nothing was written: keep the previous outcome and attempt count, only note the wait.
    record.outcome = run.prior?.outcome ?? 'in-progress';
    record.attempts = run.prior?.attempts ?? 0;
    record.actions = run.prior?.actions ?? [];
  } else if (error !== undefined && disposition === 'retry' && isServiceWait(error)) {
    // Graph asked for the wait (429, Retry-After): the run counts, but it uses up no attempt.
    record.waits = (record.waits ?? 0) + 1;
  }
  if (!deferred && record.outcome === 'failed') keepEarlierWrites(run);
  let retry: ProcessResult['retry'];
  let delayedNow = false;
  if (disposition === 'retry' && error !== undefined) {
    const gaveUp = deferred ? undefined : givesUp(ctx, record, error);
    if (gaveUp !== undefined) {
      error = new OffboardingError(
        ErrorCodes.RetriesExhausted,
        `Gave up ${gaveUp}; last error ${error.code}: ${error.message}`,
        { retryable: false },
      );
      setError(record, error);
      disposition = 'reject';
    } else if (delivery.route !== 'command') {
      const waitMs = deferred
        ? (error.retryAfterSeconds ?? 1) * 1000 * (1 + ctx.random() * 0.25)
        : retryDelayMs(ctx.deps.retry, record.attempts + 1, error.retryAfterSeconds, ctx.random);
      retry = await park(ctx, delivery, record, { kind: deferred ? 'deferral' : 'retry', waitMs });
      if (retry !== undefined) {
        record.nextAttemptAt = retry.at;
        disposition = 'done';
        if (!deferred && isOverdue(ctx, record)) {
          // Announced once (the alert fires on it); it still completes when Graph recovers.
          record.outcome = 'delayed';
          if (record.delayedAt === undefined) {
            record.delayedAt = ctx.now().toISOString();
            delayedNow = true;
            record.notes.push(
              `Delayed: still not done ${Math.round((ctx.now().getTime() - dueAt(record)) / 60_000)} minutes after it was due (last error ${error.code}); it keeps being retried.`,
            );
          }
        }
      }
    }
  }
  if (retry === undefined) delete record.nextAttemptAt;
  // A departure that ended with its revocation verified gets its sign-in watch (when the setting
  // turns it on), noted on the record this write makes. A watch an earlier attempt planned (a
  // failed departure replayed) stays: its checks and findings are the record's.
  if (run.prior?.signInWatch !== undefined) record.signInWatch = run.prior.signInWatch;
  await planSignInWatch(
    {
      scheduler: ctx.deps.scheduler,
      queue: ctx.deps.queues.employeeLeaving,
      settings: ctx.deps.signInWatch,
    },
    record,
  );

  const written = await updateRecord(ctx.deps.audit, run.key, (current) => {
    const next: AuditRecord = {
      ...record,
      duplicates: current?.duplicates ?? record.duplicates,
      ...(current?.lastDuplicateAt === undefined
        ? {}
        : { lastDuplicateAt: current.lastDuplicateAt }),
    };
    delete next.claimedBy;
    delete next.claimExpiresAt;
    // A check of the sign-in watch may have written meanwhile: what is stored stands.
    if (current?.signInWatch !== undefined) next.signInWatch = current.signInWatch;
    if (current?.claimedBy !== undefined && current.claimedBy !== run.id) {
      // Our lease ran out and another run took the event over: keep its claim, say what we did.
      next.claimedBy = current.claimedBy;
      if (current.claimExpiresAt !== undefined) next.claimExpiresAt = current.claimExpiresAt;
      next.notes = [...next.notes, 'This run outlived its claim; a later run holds the event.'];
    }
    assertMove(current, next);
    return { next, verdict: undefined };
  });
  const settled: ProcessResult = {
    disposition,
    record: written.record ?? record,
    duplicate: false,
    ...(error === undefined ? {} : { error }),
    ...(retry === undefined ? {} : { retry }),
    ...(flow.trip === undefined ? {} : { guardrailTrip: flow.trip }),
    ...(delayedNow ? { delayedNow } : {}),
  };
  // A delayed record is announced once, when it becomes delayed; a final one every time it is
  // settled (a sink may have missed it before).
  return isFinal(settled.record) || delayedNow ? delivered(ctx, delivery, settled) : settled;
}

/**
 * Gives a record to the sinks (immutable log, outcome topic). If one fails, the record stays as
 * written and a copy of the message is parked for later (about a minute; no attempt used): it
 * finds the record final and gives it again, however long the sink is down. When no copy can be
 * parked (a run by hand, Service Bus down), and for a permanent failure, the delivery is retried
 * as it is.
 */
export async function delivered(
  ctx: SettleContext,
  delivery: Delivery,
  result: ProcessResult,
): Promise<ProcessResult> {
  try {
    await deliverFinal(ctx.deps.finalSinks ?? [], result.record);
    return result;
  } catch (thrown) {
    const error = toOffboardingError(thrown);
    // A permanent failure is redelivered as it is: each redelivery gives the record again, and
    // the last one goes to the dead-letter queue, where it was heading anyway.
    if (result.disposition === 'reject') return { ...result, disposition: 'retry', error };
    // The retry policy's second delay (about a minute with the defaults), jittered.
    const retry = await park(ctx, delivery, result.record, {
      kind: 'deferral',
      waitMs: retryDelayMs(ctx.deps.retry, 3, error.retryAfterSeconds, ctx.random),
    });
    return retry === undefined
      ? { ...result, disposition: 'retry', error }
      : { ...result, disposition: 'done', error, retry };
  }
}

/** Another run holds the event: come back later, without using up an attempt. */
export async function backOff(
  ctx: SettleContext,
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
  const retry = await park(ctx, delivery, claimed, {
    kind: 'deferral',
    waitMs: waitMs * (0.75 + ctx.random() * 0.5),
  });
  return {
    disposition: retry === undefined ? 'retry' : 'done',
    record: claimed,
    duplicate: false,
    error,
    ...(retry === undefined ? {} : { retry }),
  };
}

/**
 * Parks a copy of the message on its queue for later; undefined when Service Bus would not take
 * it (the caller then lets Service Bus redeliver). Retry copies have deterministic ids (a crash
 * before completion does not park two); deferrals do not use up an attempt.
 */
async function park(
  ctx: SettleContext,
  delivery: Delivery,
  record: AuditRecord,
  plan: { kind: 'retry' | 'deferral'; waitMs: number },
): Promise<ProcessResult['retry']> {
  if (delivery.route === 'command' || record.route === undefined) return undefined;
  const route = record.route as RouteName;
  const at = new Date(ctx.now().getTime() + plan.waitMs);
  // One retry copy per received message, whatever happens: a redelivery of the same message
  // (a crash before completion) parks the same id, which duplicate detection drops.
  const messageId =
    plan.kind === 'retry'
      ? `${AppMessageIdPrefixes.retry}${stableId(record.identityKey, record.contentDigest, delivery.messageId)}`
      : `${AppMessageIdPrefixes.wait}${stableId(record.identityKey, record.contentDigest, randomUUID())}`;
  try {
    const sequenceNumber = await ctx.deps.scheduler.schedule(
      ctx.deps.queues[route],
      copyOf(delivery, messageId, {
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
export function copyOf(
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
