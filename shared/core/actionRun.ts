import { accessCutoff } from './accessCutoff';
import { actionSpec, type ActionName } from './actions';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { combinedError, fail, failureOf, onPremisesMastered, supersede } from './flow';
import { commitWrites } from './personTimeline';
import type { FlowContext, FlowResult, Run } from './run';
import { decodeBody } from './events';
import { decidedBy, guardrailOf, type Admission } from './guardrail';
import { MessageProperties } from './messaging';
import type { ActionResult, AuditRecord, DirectoryUser, Verification } from './ports';
import { Routes, routeOfKind } from './routes';
import { describeUserRef, type UserRef } from './userRef';

/** Longest held event kept on its record (a Table Storage string property holds 32K characters). */
const MAX_HELD_EVENT_CHARS = 30_000;

/** A run starts no Graph write after this long (each call has its own 45 s bound). */
export const RUN_BUDGET_MS = 3 * 60_000;

/*
 * Acting on a user: the actions of the action table in order, then the proof that the revocation
 * took effect.
 */

/**
 * The blast-radius guardrail, before the first write of an event (an event that resolves to
 * nobody, or has nothing left to write, is not counted). Counted once per event: later attempts
 * pass. Returns the flow's end when the event is held; undefined when it may go on.
 */
async function passGuardrail(ctx: FlowContext, run: Run): Promise<FlowResult | undefined> {
  const { guardrail } = ctx.deps;
  const { record, delivery, event } = run;
  const mark = record.guardrail ?? {};
  if (guardrail === undefined || mark.admittedAt !== undefined) return undefined;
  const at = ctx.now().toISOString();
  if (run.release !== undefined) {
    // An operator released this held event: it runs without being counted.
    const release = { ...decidedBy(run.release), approvalId: run.release.approvalId };
    record.guardrail = { ...mark, admittedAt: at, approval: release.approvalId, release };
    record.notes.push(
      `Released from the guardrail by ${release.by} at ${release.at}: ${release.reason}`,
    );
    return undefined;
  }
  const wave = delivery.properties?.[MessageProperties.wave];
  const waveProof = delivery.properties?.[MessageProperties.waveProof];
  let admission: Admission;
  try {
    admission = await guardrail.admit({
      route: guardrailOf(event.kind),
      event: run.key,
      ...(typeof wave === 'string' && wave !== '' ? { wave } : {}),
      ...(typeof waveProof === 'string' ? { waveProof } : {}),
    });
  } catch (error) {
    // Fails closed: an event the guardrail cannot count is retried, never run uncounted.
    record.actions = [];
    return fail(record, toOffboardingError(error));
  }
  if (admission.admitted) {
    record.guardrail = {
      ...mark,
      admittedAt: at,
      ...(admission.approval === undefined ? {} : { approval: admission.approval }),
    };
    return undefined;
  }
  record.outcome = 'held';
  record.actions = record.requestedActions.map((action) => ({ action, status: 'not-attempted' }));
  // Kept so that a release can send it again (an event holds no secret). A table property holds
  // 32K characters: a larger event is released by the sender sending it again (same content).
  const heldEvent = JSON.stringify(decodeBody(delivery.body));
  const keep = heldEvent.length <= MAX_HELD_EVENT_CHARS;
  record.guardrail = {
    ...mark,
    heldAt: at,
    heldReason: admission.reason,
    ...(keep ? { heldEvent } : {}),
    ...(admission.trippedNow ? { tripped: true } : {}),
  };
  record.notes.push(admission.reason);
  if (!keep)
    record.notes.push(
      `The event is too large to keep on this record (${heldEvent.length} characters): once released, it runs when its sender sends it again.`,
    );
  return { disposition: 'done', ...(admission.trippedNow ? { trip: admission.trip } : {}) };
}

/** Runs the event's actions against Graph and proves the revocation. */
export async function perform(ctx: FlowContext, run: Run): Promise<FlowResult> {
  const { policy } = ctx.deps;
  const { record, prior, event } = run;
  const resolved = await ctx.resolve(run);
  if ('flow' in resolved) return resolved.flow;
  const { user } = resolved;

  const synced = user.onPremisesSyncEnabled === true;
  const guest = user.userType?.toLowerCase() === 'guest';
  if (guest && record.requestedActions.includes('revokeSignInSessions')) {
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

  // Progress of an earlier attempt counts only for the same directory object (resolve() refuses
  // an event whose UPN has moved to another object since an earlier attempt), and only while the
  // account as read now still shows it: anything may have changed the account since.
  const earlierProgress = prior?.objectId === user.id ? prior.actions : [];
  const toRun: ActionName[] = [];
  for (const action of record.requestedActions) {
    const earlier = earlierProgress.find((a) => a.action === action && a.status === 'succeeded');
    const undone = earlier !== undefined && undoneSince(action, user);
    if (earlier && !undone && !actionSpec(action).repeatEachAttempt) {
      // Done by an earlier attempt of this event; do not reset a password twice.
      record.actions.push({ ...earlier, message: 'Done in an earlier attempt.' });
    } else if (synced && actionSpec(action).masteredOnPremises) {
      record.actions.push(failureOf(action, onPremisesMastered(action)));
    } else {
      if (undone)
        record.notes.push(
          `An earlier attempt of this event made ${action}, but the account as read now does not show it: it is done again.`,
        );
      toRun.push(action);
    }
  }

  if (toRun.length > 0) {
    const held = await passGuardrail(ctx, run);
    if (held !== undefined) return held;
  }

  try {
    await ctx.pacer.reserve(Routes[routeOfKind(event.kind)].lane, toRun.length);
  } catch (error) {
    // No budget now: nothing was written; the event waits without using up an attempt.
    record.actions = [];
    return fail(record, toOffboardingError(error));
  }

  // The commit point: still the person's latest HR intent, decided in one conditional write.
  if (run.admission !== undefined && toRun.length > 0) {
    const { intent, seen, version } = run.admission;
    const committed = await commitWrites(
      ctx.deps.timelines,
      user.id,
      intent,
      seen,
      toRun,
      ctx.now().toISOString(),
      version,
    );
    run.admission = { ...run.admission, pending: false };
    if (committed.verdict.kind === 'superseded') {
      record.actions = [];
      return supersede(record, committed.verdict.by, prior, committed.timeline);
    }
  }

  // Errors of this run's failed actions, kept to decide retryability and Retry-After.
  const errors = new Map<ActionName, OffboardingError>();
  for (const action of toRun) {
    const overdue = ctx.now().getTime() - run.startedAt.getTime() > RUN_BUDGET_MS;
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
    record.actions.push(await write(ctx, action, user.id, record, errors));
  }
  record.actions.sort(
    (a, b) => record.requestedActions.indexOf(a.action) - record.requestedActions.indexOf(b.action),
  );

  const revoked = record.actions.find((a) => a.action === 'revokeSignInSessions');
  if (revoked?.status === 'succeeded') {
    const verification = await verify(ctx, event.user, user, record);
    record.verification = verification.result;
    if (verification.error) return fail(record, verification.error);
  }

  const revokedNow = record.actions.some(
    (a) => a.action === 'revokeSignInSessions' && a.status === 'succeeded',
  );
  if (synced && revokedNow) {
    record.notes.push(
      'Synchronised user: the sessions were revoked in Entra ID; what on-premises AD owns must be changed there.',
    );
  }
  const failures = record.actions.filter((a) => a.status === 'failed');
  if (failures.length === 0) {
    record.outcome = 'succeeded';
    const revokedAt = record.verification?.verified
      ? record.verification.signInSessionsValidFrom
      : undefined;
    const cutoff =
      revokedAt === undefined
        ? undefined
        : accessCutoff({
            revokedAt,
            guest,
            disabled: record.actions.some(
              (a) => a.action === 'disableAccount' && a.status === 'succeeded',
            ),
          });
    if (cutoff !== undefined) record.accessCutoff = cutoff;
    return { disposition: 'done' };
  }
  return fail(record, combinedError(failures, errors));
}

/** Whether the account as read now no longer shows an earlier attempt's change. */
function undoneSince(action: ActionName, user: DirectoryUser): boolean {
  if (action === 'disableAccount') return user.accountEnabled === true;
  if (action === 'enableAccount') return user.accountEnabled === false;
  return false;
}

export async function write(
  ctx: FlowContext,
  action: ActionName,
  userId: string,
  record: AuditRecord,
  errors: Map<ActionName, OffboardingError>,
): Promise<ActionResult> {
  const { directory } = ctx.deps;
  try {
    const call = await actionSpec(action).run(directory, userId, () => ctx.makePassword());
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
export async function verify(
  ctx: FlowContext,
  ref: UserRef,
  before: DirectoryUser,
  record: AuditRecord,
): Promise<{ result: Verification; error?: OffboardingError }> {
  const previous = before.signInSessionsValidFromDateTime ?? undefined;
  let after: DirectoryUser;
  try {
    const read = await ctx.deps.directory.getUser({ kind: 'objectId', value: before.id });
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
  const disabled = record.actions.some(
    (a) => a.action === 'disableAccount' && a.status === 'succeeded',
  );
  if (result.verified && disabled && after.accountEnabled === true) {
    // The record must agree with the account as read at the end.
    return {
      result,
      error: new OffboardingError(
        ErrorCodes.VerificationFailed,
        `The account of ${describeUserRef(ref)} was disabled, but reads enabled again; retrying.`,
        { retryable: true },
      ),
    };
  }
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
