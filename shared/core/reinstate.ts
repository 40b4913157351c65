import { perform } from './actionRun';
import { historyOf, isClaimedByOther, isKind } from './auditRecords';
import { ErrorCodes, OffboardingError } from './errors';
import type { ReinstatedEvent } from './events';
import { fail, type FlowContext, type FlowResult, type Run } from './flow';
import type { AuditRecord, DirectoryUser, RecordKey } from './ports';
import { describeUserRef } from './userRef';

/*
 * employee.reinstated (HR) and `offboard reinstate` (an operator): re-enables an account this app
 * disabled. The audit is the proof of "this app disabled it"; an account disabled by anyone else
 * is left alone unless an operator forces it. A protected account is refused like any event
 * (resolve). A departure still running would disable the account again behind a reinstatement,
 * so a reinstatement waits for it; a departure still scheduled is not cancelled by it.
 */

export async function reinstate(
  ctx: FlowContext,
  event: ReinstatedEvent,
  run: Run,
): Promise<FlowResult> {
  const { record } = run;
  const resolved = await ctx.resolve(run);
  if ('flow' in resolved) return resolved.flow;
  const { user } = resolved;
  const now = ctx.now();
  // Only a run by hand can force; a queue message cannot carry it.
  const forced = run.delivery.route === 'command' && run.delivery.force === true;

  const history = (await historyOf(ctx.deps.audit, user)).filter(
    (r) => !sameKey(r, run.key) && isThisUser(r, user),
  );
  const departures = history.filter((r) => isKind(r, 'employee.leaving'));

  const underway = departures.find((d) => isBeingCarriedOut(d, run.id, now));
  if (underway !== undefined) return fail(record, departureUnderway(underway, run.id, now));

  if (event.departureEvent !== undefined) {
    const named = departures.find((d) => d.eventId === event.departureEvent);
    record.notes.push(
      named === undefined
        ? `The departure event ${event.departureEvent} named by this reinstatement is not among this user's departures in the audit.`
        : `Names departure ${named.eventId} (${named.outcome}, last attempt ${named.lastAttemptAt}).`,
    );
  }

  const pending = departures.filter((d) => d.outcome === 'scheduled');
  const pendingText = pending.map(
    (d) =>
      `Departure ${d.eventId} is still scheduled for ${d.effectiveAt ?? 'a later date'}: a reinstatement does not cancel it, and the account is disabled again on that date unless employee.leaving.cancelled is sent for this user.`,
  );

  const disabledBy = latest(departures.filter((d) => succeeded(d, 'disableAccount')));
  const enabledAgainBy = latest(
    history.filter((r) => isKind(r, 'employee.reinstated') && succeeded(r, 'enableAccount')),
  );
  const undone =
    disabledBy !== undefined &&
    enabledAgainBy !== undefined &&
    enabledAgainBy.lastAttemptAt >= disabledBy.lastAttemptAt;

  if (disabledBy === undefined || undone) {
    const why =
      disabledBy === undefined
        ? `the audit shows no departure by this app that disabled ${describeUserRef(event.user)} (object ${user.id})`
        : `departure ${disabledBy.eventId} disabled ${describeUserRef(event.user)}, but reinstatement ${enabledAgainBy?.eventId ?? ''} re-enabled it at ${enabledAgainBy?.lastAttemptAt ?? ''}, and the audit shows no disabling by this app since`;
    if (!forced) {
      return fail(
        record,
        new OffboardingError(
          ErrorCodes.NotDisabledByThisApp,
          [
            `Not reinstated: ${why}. Nothing was changed. An account someone else disabled is re-enabled by them, or by an operator with "offboard reinstate --force" (an HR event cannot force it).`,
            ...pendingText,
          ].join(' '),
          { retryable: false },
        ),
      );
    }
    record.notes.push(
      `Forced by the operator (--force): ${why}; the account is re-enabled on the operator's word.`,
    );
  } else {
    record.notes.push(
      `Undoes departure ${disabledBy.eventId}, which disabled the account (last attempt ${disabledBy.lastAttemptAt}).`,
    );
  }
  record.notes.push(...pendingText);

  // The user is resolved already: the shared run (dry run, synced users, pacing, the write) takes it.
  const flow = await perform({ ...ctx, resolve: () => Promise.resolve({ user }) }, run);
  if (record.outcome === 'succeeded') {
    record.notes.push(whatIsNotRestored(departures, forced && disabledBy === undefined));
  }
  return flow;
}

/**
 * What a reinstatement cannot give back, and what the helpdesk does next. A password reset by a
 * departure is unknown to everyone; sessions revoked stay revoked.
 */
function whatIsNotRestored(departures: AuditRecord[], unknownHistory: boolean): string {
  const reset = latest(departures.filter((d) => succeeded(d, 'resetPassword')));
  const password =
    reset !== undefined
      ? `the password reset by departure ${reset.eventId} stays reset (nobody knows the new one)`
      : unknownHistory
        ? 'a password reset by whoever disabled the account stays as it is'
        : 'the password was not reset by this app, so the old one still works';
  const next =
    reset !== undefined || unknownHistory
      ? 'issue a Temporary Access Pass or a new password, then the user signs in again'
      : 'the user signs in again';
  return `The account is enabled again. A reinstatement does not restore the rest: ${password}; sessions revoked earlier stay revoked. Next (helpdesk): ${next}.`;
}

function sameKey(a: RecordKey, b: RecordKey): boolean {
  return a.identityKey === b.identityKey && a.contentDigest === b.contentDigest;
}

/** A record resolved to another object (a UPN reused since) is someone else's history. */
function isThisUser(record: AuditRecord, user: DirectoryUser): boolean {
  return record.objectId === undefined || record.objectId.toLowerCase() === user.id.toLowerCase();
}

/** The action succeeded for a resolved object (a record without object id did not write). */
function succeeded(record: AuditRecord, action: AuditRecord['actions'][number]['action']): boolean {
  return (
    record.objectId !== undefined &&
    record.actions.some((a) => a.action === action && a.status === 'succeeded')
  );
}

function latest(records: AuditRecord[]): AuditRecord | undefined {
  return [...records].sort((a, b) => a.lastAttemptAt.localeCompare(b.lastAttemptAt)).at(-1);
}

/** Claimed by a run now, or not finished yet (a retry due, or a run that ended unrecorded). */
function isBeingCarriedOut(record: AuditRecord, runId: string, now: Date): boolean {
  return (
    isClaimedByOther(record, runId, now) ||
    record.outcome === 'in-progress' ||
    (record.outcome === 'failed' && record.retryable === true)
  );
}

function departureUnderway(departure: AuditRecord, runId: string, now: Date): OffboardingError {
  const claimed = isClaimedByOther(departure, runId, now);
  const until = claimed ? departure.claimExpiresAt : departure.nextAttemptAt;
  const waitSeconds =
    until === undefined ? 0 : Math.ceil((Date.parse(until) - now.getTime()) / 1000);
  const state = claimed
    ? `is being carried out now (claimed until ${departure.claimExpiresAt ?? 'unknown'})`
    : `has not finished (${departure.outcome}${departure.nextAttemptAt === undefined ? '' : `, next attempt at ${departure.nextAttemptAt}`})`;
  return new OffboardingError(
    ErrorCodes.DepartureUnderway,
    `Departure ${departure.eventId} of this user ${state}: nothing was changed, so that it cannot disable the account again behind this reinstatement. Reinstate after it has finished (a queued reinstatement is retried by itself).`,
    { retryable: true, ...(waitSeconds > 0 ? { retryAfterSeconds: waitSeconds } : {}) },
  );
}
