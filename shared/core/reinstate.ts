import { perform } from './actionRun';
import { historyOf, isClaimedByOther, isKind } from './auditRecords';
import { ErrorCodes, OffboardingError } from './errors';
import type { ReinstatedEvent } from './events';
import { fail } from './flow';
import type { AuditRecord, DirectoryUser, RecordKey } from './ports';
import type { FlowContext, FlowResult, Run } from './run';
import { changedOutsideSince, lastAccountChange } from './timeline';
import { describeUserRef } from './userRef';

/*
 * employee.reinstated (HR) and `offboard reinstate` (an operator): undoes this app's own last
 * change, re-enabling an account this app disabled. The audit is the proof of "this app disabled
 * it", the person's timeline of "nobody changed it since"; an account disabled by anyone else, or
 * re-enabled by anyone since this app disabled it, is left alone unless an operator forces it. A
 * protected account is refused like any event (resolve). Earlier departures are superseded by it
 * (the timeline), but one being carried out right now could still disable the account behind it,
 * so a reinstatement waits for that run.
 */

export async function reinstate(
  ctx: FlowContext,
  event: ReinstatedEvent,
  run: Run,
): Promise<FlowResult> {
  const { record } = run;
  const resolved = await ctx.resolve(run);
  if ('flow' in resolved) return resolved.flow;
  // The person's timeline as read when this event was checked against it (with this read's view).
  const { user, timeline } = resolved;
  const now = ctx.now();
  // Only a run by hand can force; a queue message cannot carry it.
  const forcedBy = run.delivery.route === 'command' ? run.delivery.force : undefined;
  const forced = forcedBy !== undefined;
  if (forcedBy !== undefined) record.forcedBy = forcedBy;

  const history = (await historyOf(ctx.deps.audit, user)).filter(
    (r) => !sameKey(r, run.key) && isThisUser(r, user),
  );
  const departures = history.filter((r) => isKind(r, 'employee.leaving'));

  // Earlier departures that come back are superseded (the timeline); only one running now could
  // still write behind this reinstatement.
  const underway = departures.find((d) => isClaimedByOther(d, run.id, now));
  if (underway !== undefined) return fail(record, departureUnderway(underway, run.id, now));

  if (event.departureEvent !== undefined) {
    const named = departures.find((d) => d.eventId === event.departureEvent);
    record.notes.push(
      named === undefined
        ? `The departure event ${event.departureEvent} named by this reinstatement is not among this user's departures in the audit.`
        : `Names departure ${named.eventId} (${named.outcome}, last attempt ${named.lastAttemptAt}).`,
    );
  }

  // Every earlier departure that has not ended in success comes back superseded, whatever brings it.
  const pending = departures.filter((d) => d.outcome !== 'succeeded' && d.outcome !== 'superseded');
  const pendingText = pending.map((d) =>
    d.outcome === 'scheduled'
      ? `Departure ${d.eventId} scheduled for ${d.effectiveAt ?? 'a later date'} is superseded by this reinstatement: when its date comes it writes nothing.`
      : `Departure ${d.eventId} (${d.outcome}, last attempt ${d.lastAttemptAt}) is superseded by this reinstatement: a retry or replay of it writes nothing.`,
  );

  const disabledBy = latest(departures.filter((d) => succeeded(d, 'disableAccount')));
  const enabledAgainBy = latest(
    history.filter((r) => isKind(r, 'employee.reinstated') && succeeded(r, 'enableAccount')),
  );
  const undone =
    disabledBy !== undefined &&
    enabledAgainBy !== undefined &&
    enabledAgainBy.lastAttemptAt >= disabledBy.lastAttemptAt;
  // Someone else changed the account after this app's last change to it (a read showed it).
  const outside = timeline === undefined ? undefined : changedOutsideSince(timeline);

  if (disabledBy === undefined || undone || outside !== undefined) {
    const why =
      disabledBy === undefined
        ? `the audit shows no departure by this app that disabled ${describeUserRef(event.user)} (object ${user.id})`
        : undone
          ? `departure ${disabledBy.eventId} disabled ${describeUserRef(event.user)}, but reinstatement ${enabledAgainBy?.eventId ?? ''} re-enabled it at ${enabledAgainBy?.lastAttemptAt ?? ''}, and the audit shows no disabling by this app since`
          : `this app disabled ${describeUserRef(event.user)} (departure ${disabledBy.eventId}), but the account was read ${outside?.accountEnabled ? 'enabled' : 'disabled'} at ${outside?.at ?? ''}, after that: someone else has changed it since, so the account's state is no longer this app's to undo`;
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
      `Forced by ${forcedBy?.by ?? 'the operator'} (--force) at ${forcedBy?.at ?? now.toISOString()}: ${forcedBy?.reason ?? ''}. ${why}; the account is re-enabled on the operator's word.`,
    );
  } else {
    const last = timeline === undefined ? undefined : lastAccountChange(timeline);
    record.notes.push(
      `Undoes departure ${disabledBy.eventId}, which disabled the account (last attempt ${disabledBy.lastAttemptAt}).`,
      `What cannot be known: this app sees a change made by someone else only when one of its runs reads the account afterwards; an account re-enabled and disabled again by someone else since this app's change${last === undefined ? '' : ` at ${last.at}`} looks as this app left it.`,
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
