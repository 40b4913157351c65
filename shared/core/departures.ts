import { historyOf, isClaimedByOther, isKind, updateRecord } from './auditRecords';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { stableId } from './eventIdentity';
import type { LeavingEvent } from './events';
import { deliverFinal, fail } from './flow';
import type { FlowContext, FlowResult, Run } from './run';
import { AppMessageIdPrefixes, MessageProperties } from './messaging';
import type { AuditRecord } from './ports';
import { MAX_SCHEDULE_AHEAD_DAYS } from './queuePolicy';
import { attemptedBy, type Timeline } from './timeline';

/*
 * Departures with a leave date: scheduling the copy for the date, and cancelling what is still
 * waiting. Both resolve the user first, so an unknown or protected user fails now, not on the date.
 */

export async function scheduleDeparture(
  ctx: FlowContext,
  event: LeavingEvent,
  run: Run,
): Promise<FlowResult> {
  const { record } = run;
  const effectiveAt = event.effectiveAt as string;
  const at = new Date(effectiveAt);
  const horizon = ctx.now().getTime() + MAX_SCHEDULE_AHEAD_DAYS * 86_400_000;
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
  const resolved = await ctx.resolve(run);
  if ('flow' in resolved) return resolved.flow;
  record.effectiveAt = effectiveAt;
  record.actions = record.requestedActions.map((action) => ({ action, status: 'not-attempted' }));
  try {
    record.scheduledSequenceNumber = await ctx.deps.scheduler.schedule(
      ctx.deps.queues.employeeLeaving,
      // Deterministic: if we crash before completing, the re-scheduled copy is a duplicate
      // that Service Bus drops.
      ctx.copyOf(
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
  if (ctx.deps.policy.dryRun) {
    record.notes.push(
      'DRY_RUN is on now; the departure runs in whatever mode is set on the leave date.',
    );
  }
  return { disposition: 'done' };
}

/**
 * employee.leaving.cancelled: the person's timeline already holds it (resolve), so every earlier
 * departure that comes back later is superseded; here it also ends what is waiting now. A departure
 * is marked cancelled only while it is still waiting and unclaimed (a conditional write), so a
 * cancellation that loses the race to the leave-date copy says so instead of claiming success.
 */
export async function cancelDeparture(ctx: FlowContext, run: Run): Promise<FlowResult> {
  const { record, event } = run;
  const resolved = await ctx.resolve(run);
  if ('flow' in resolved) return resolved.flow;
  const { audit, scheduler, queues } = ctx.deps;
  const history = await historyOf(audit, resolved.user);
  const now = ctx.now();
  // Departures that started or finished: too late to cancel, and the audit must say so.
  const underway: AuditRecord[] = [];
  let cancelledAny = false;
  let busy: AuditRecord | undefined;
  const cancelledNote = `Cancelled by event ${event.id}`;
  for (const departure of history) {
    if (!isKind(departure, 'employee.leaving')) continue;
    const result = await updateRecord<CancelVerdict>(audit, departure, (current) => {
      const verdict = cancelVerdict(current, run.id, now, cancelledNote, resolved.timeline);
      if (verdict !== 'cancelled' || current === undefined) return { verdict };
      return {
        next: {
          ...current,
          outcome: 'cancelled',
          notes: [...current.notes, `${cancelledNote} at ${now.toISOString()}.`],
        },
        verdict,
      };
    });
    if (result.verdict === 'busy') busy = result.record ?? departure;
    if (result.verdict === 'cancelled' || result.verdict === 'already-cancelled') {
      // The departure's record is final now: the immutable log and the outcome topic hear of it
      // (again, if an earlier attempt of this cancellation could not tell them).
      try {
        await deliverFinal(ctx.deps.finalSinks ?? [], result.record ?? departure);
      } catch (error) {
        return fail(record, toOffboardingError(error));
      }
    }
    if (result.verdict === 'already-cancelled') {
      cancelledAny = true;
      record.notes.push(`Cancelled departure ${departure.eventId} (in an earlier attempt).`);
      continue;
    }
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
  if (busy !== undefined) {
    // A departure of this user is being scheduled right now: decide once that run has ended.
    const waitMs = Math.max(1_000, Date.parse(busy.claimExpiresAt ?? '') - now.getTime());
    return fail(
      record,
      new OffboardingError(
        ErrorCodes.Deferred,
        `Departure ${busy.eventId} of this user is being processed right now; the cancellation waits for it to end.`,
        { retryable: true, retryAfterSeconds: Math.min(waitMs, 15_000) / 1000 },
      ),
    );
  }
  // A departure a later reinstatement undid is history: it keeps no one out now.
  const standing = underway.filter((d) => !undoneByReinstatement(d, history));
  const last = standing[standing.length - 1];
  if (last !== undefined) {
    // A departure already wrote to the account: the cancellation cannot keep the person as HR
    // asked, whatever else it called off, so it does not end as a success.
    const others = standing
      .slice(0, -1)
      .map((other) => ` Departure ${other.eventId} ${wroteText(other)} too.`)
      .join('');
    return fail(
      record,
      new OffboardingError(
        ErrorCodes.DepartureAlreadyExecuted,
        `Too late to cancel: departure ${last.eventId} ${wroteText(last)}.${others}${cancelledAny ? ' Departures that had not written yet are cancelled (see the notes).' : ''} If the person stays, send employee.reinstated (or run offboard reinstate) to re-enable the account.`,
        { retryable: false },
      ),
    );
  }
  for (const undone of underway)
    record.notes.push(
      `Departure ${undone.eventId} (last attempt ${undone.lastAttemptAt}) was undone by a later reinstatement: it keeps no one out now.`,
    );
  if (!cancelledAny)
    record.notes.push(
      'No departure of this person was waiting. Any earlier departure of this person that arrives, is retried or is replayed later is superseded by this cancellation and writes nothing.',
    );
  record.outcome = 'succeeded';
  return { disposition: 'done' };
}

function undoneByReinstatement(departure: AuditRecord, history: readonly AuditRecord[]): boolean {
  return history.some(
    (r) =>
      isKind(r, 'employee.reinstated') &&
      r.outcome === 'succeeded' &&
      r.lastAttemptAt > departure.lastAttemptAt,
  );
}

/** What a departure the cancellation came too late for did to the account. */
function wroteText(departure: AuditRecord): string {
  return departure.outcome === 'succeeded'
    ? `already offboarded this user at ${departure.lastAttemptAt}`
    : 'was being carried out by a run that ended without recording what it wrote';
}

type CancelVerdict = 'cancelled' | 'already-cancelled' | 'underway' | 'busy' | 'not-applicable';

/**
 * What a cancellation may do with one departure of the user. It cancels only what has not tried
 * a Graph write yet; a departure claimed by another run is waited for (that run either writes or
 * finds itself superseded by this cancellation at its commit point), then judged on what it did.
 */
function cancelVerdict(
  current: AuditRecord | undefined,
  runId: string,
  now: Date,
  cancelledNote: string,
  timeline: Timeline | undefined,
): CancelVerdict {
  if (current === undefined) return 'not-applicable';
  if (current.outcome === 'cancelled')
    return current.notes.some((n) => n.startsWith(cancelledNote))
      ? 'already-cancelled'
      : 'not-applicable';
  if (isClaimedByOther(current, runId, now)) return 'busy';
  // A write that failed may still have reached Graph (a 5xx or a reset connection says nothing
  // about whether the change was made): only a departure that never tried one can be cancelled.
  if (current.actions.some((a) => a.status === 'succeeded' || a.status === 'failed'))
    return 'underway';
  if (current.outcome === 'succeeded') return 'underway';
  // The person's timeline shows a run of it wrote, or committed to writes and ended without
  // recording them (its audit write failed): it may have written.
  const ref = `${current.identityKey}/${current.contentDigest}`;
  if (attemptedBy(timeline, ref).length > 0) return 'underway';
  const waiting =
    current.outcome === 'scheduled' ||
    current.outcome === 'in-progress' ||
    // Held by the guardrail: nothing of it reached Graph.
    current.outcome === 'held' ||
    (current.outcome === 'failed' && current.retryable === true);
  return waiting ? 'cancelled' : 'not-applicable';
}
