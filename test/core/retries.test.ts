/**
 * Transient failures, retries and their limit, permanent failures and their redelivery, replays,
 * progress kept between attempts, and waiting for the write budget.
 */
import { ErrorCodes } from '../../shared/core/errors';
import { MessageProperties } from '../../shared/core/messaging';
import { toOutcomeEvent } from '../../shared/core/outcomeEvent';
import { graphErrors } from '../support/fakes';
import {
  QUEUES,
  RETRY,
  delivery,
  leaving,
  makeCore,
  message,
  mfaEnabled,
  statuses,
} from './harness';

describe('transient failures', () => {
  it('throttling is retryable: a copy is parked no sooner than Retry-After, the original completes', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.throttled(120));
    const outcome = await core.handle('employeeLeaving', {
      body: leaving('alice@contoso.com'),
      messageId: 'm1',
    });
    const { result } = outcome;

    expect(outcome.settlement).toBe('complete');
    expect(result.disposition).toBe('done');
    expect(statuses(result.record)).toEqual({
      disableAccount: 'succeeded',
      revokeSignInSessions: 'failed',
    });
    expect(result.record.outcome).toBe('failed');
    expect(result.record.errorCode).toBe(ErrorCodes.Throttled);
    expect(result.record.retryable).toBe(true);
    const at = core.clock.iso(120_000);
    expect(result.retry?.at).toBe(at);
    expect(result.record.nextAttemptAt).toBe(at);
    const parked = core.scheduler.last();
    expect(parked.queue).toBe(QUEUES.employeeLeaving);
    expect(parked.at.toISOString()).toBe(at);
    expect(parked.message.messageId).toBe(result.retry?.messageId);
    expect(parked.message.messageId).toMatch(/^retry-/);
    expect(parked.message.applicationProperties).toMatchObject({
      [MessageProperties.attempt]: 2,
      [MessageProperties.originalMessageId]: 'm1',
    });
  });

  it('without Retry-After the wait follows the retry policy (base delay with jitter)', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const result = await core.process(delivery(leaving('alice@contoso.com')));
    // Attempt 2: ceiling = base (10 s), equal jitter with random 0.5 = 7.5 s.
    expect(result.retry?.at).toBe(core.clock.iso(7_500));
  });

  it('the next attempt keeps what the earlier one did for the same user and redoes only the rest', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.throttled(30));
    const first = await core.handle(
      'employeeLeaving',
      message(leaving('alice@contoso.com', { resetPassword: true })),
    );
    core.clock.set(first.result.retry?.at ?? '');
    const second = await core.handle('employeeLeaving', core.scheduler.take(core.scheduler.last()));

    expect(core.directory.callsOf('disableAccount')).toHaveLength(1);
    expect(core.directory.callsOf('resetPassword')).toHaveLength(1);
    expect(core.directory.callsOf('revokeSignInSessions')).toHaveLength(2);
    const record = second.result.record;
    expect(record.outcome).toBe('succeeded');
    expect(record.attempts).toBe(2);
    expect(record.actions.find((a) => a.action === 'resetPassword')?.message).toBe(
      'Done in an earlier attempt.',
    );
    expect(record.nextAttemptAt).toBeUndefined();
    expect(record.errorCode).toBeUndefined();
    expect(record.firstAttemptAt).toBe('2026-11-30T09:00:00.000Z');
  });

  it('a UPN that moved to another object between attempts is refused, never written to the new owner', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.throttled(30));
    const first = await core.handle('employeeLeaving', message(leaving('alice@contoso.com')));
    const oldId = core.users.alice.id;

    // Between the attempts the UPN passes to another directory object.
    core.directory.removeUser(oldId);
    const successor = core.directory.addUser({ userPrincipalName: 'alice@contoso.com' });
    core.clock.set(first.result.retry?.at ?? '');
    const second = await core.handle('employeeLeaving', core.scheduler.take(core.scheduler.last()));

    expect(core.directory.callsOf('disableAccount').map((c) => c.target)).toEqual([oldId]);
    expect(core.directory.writes().filter((w) => w.target === successor.id)).toEqual([]);
    expect(second.result.record).toMatchObject({
      outcome: 'failed',
      errorCode: 'UserChanged',
      retryable: false,
    });
    expect(second.result.record.objectId?.toLowerCase()).toBe(oldId.toLowerCase());
    // The audit names the new owner; the outcome topic's subscribers are not told who it is.
    expect(second.result.record.errorMessage).toContain(successor.id);
    const announced = JSON.stringify(toOutcomeEvent(second.result.record));
    expect(announced).toContain('UserChanged');
    expect(announced.toLowerCase()).not.toContain(successor.id.toLowerCase());
  });

  it('a redelivery of the same message after a transient failure parks the same copy id (Service Bus drops the second)', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable(), { times: 2 });
    const body = leaving('alice@contoso.com');
    await core.process(delivery(body, { messageId: 'm1' }));
    await core.process(delivery(body, { messageId: 'm1' }));
    const ids = core.scheduler.scheduled.map((s) => s.message.messageId);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
  });

  it('a run by hand parks nothing: it reports retry', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const result = await core.process(
      delivery(mfaEnabled('alice@contoso.com'), { route: 'command' }),
    );
    expect(result.disposition).toBe('retry');
    expect(result.retry).toBeUndefined();
    expect(result.record.nextAttemptAt).toBeUndefined();
    expect(core.scheduler.scheduled).toEqual([]);
  });

  it('when no copy can be parked the message is abandoned (Service Bus redelivers it)', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    core.scheduler.failNext();
    const outcome = await core.handle('employeeLeaving', message(leaving('alice@contoso.com')));

    expect(outcome.settlement).toBe('abandon');
    expect(outcome.result.disposition).toBe('retry');
    expect(outcome.result.record.outcome).toBe('failed');
    expect(outcome.result.record.retryable).toBe(true);
    expect(outcome.result.record.nextAttemptAt).toBeUndefined();
  });
});

describe('retries exhausted', () => {
  it(`after RETRY_MAX_ATTEMPTS (${RETRY.maxAttempts}) attempts the event fails permanently with RetriesExhausted`, async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable(), { times: 5 });
    let outcome = await core.handle('mfaEnabled', message(mfaEnabled('alice@contoso.com')));
    for (let attempt = 2; attempt <= RETRY.maxAttempts; attempt++) {
      expect(outcome.settlement).toBe('complete');
      expect(outcome.result.record.attempts).toBe(attempt - 1);
      core.clock.set(outcome.result.retry?.at ?? '');
      outcome = await core.handle('mfaEnabled', core.scheduler.take(core.scheduler.last()));
    }

    expect(core.directory.callsOf('revokeSignInSessions')).toHaveLength(RETRY.maxAttempts);
    expect(core.scheduler.scheduled).toHaveLength(RETRY.maxAttempts - 1);
    expect(outcome.settlement).toBe('abandon');
    expect(outcome.result.disposition).toBe('reject');
    expect(outcome.result.retry).toBeUndefined();
    const record = outcome.result.record;
    expect(record.attempts).toBe(RETRY.maxAttempts);
    expect(record.outcome).toBe('failed');
    expect(record.errorCode).toBe(ErrorCodes.RetriesExhausted);
    expect(record.retryable).toBe(false);
    expect(record.errorMessage).toMatch(/GraphUnavailable/);
    expect(record.nextAttemptAt).toBeUndefined();
  });
});

describe('permanent failures, redeliveries and replays', () => {
  it('a redelivery of the same message after a permanent failure makes no Graph call', async () => {
    const core = makeCore();
    const body = leaving('nobody@contoso.com');
    const first = await core.handle('employeeLeaving', { body, messageId: 'm1' });
    expect(first.settlement).toBe('abandon');
    const callsBefore = core.directory.calls.length;

    const again = await core.handle('employeeLeaving', { body, messageId: 'm1' });

    expect(core.directory.calls).toHaveLength(callsBefore);
    expect(again.settlement).toBe('abandon');
    expect(again.result.disposition).toBe('reject');
    expect(again.result.error?.code).toBe(ErrorCodes.UserNotFound);
    expect(again.result.record.errorCode).toBe(ErrorCodes.UserNotFound);
    // A redelivery of a final failure is a duplicate, not another attempt.
    expect(again.result.record.attempts).toBe(1);
    expect(again.result.record.duplicates).toBe(1);
  });

  it('a refused event redelivered stays refused without reading the directory', async () => {
    const core = makeCore();
    const body = leaving(core.users.breakglass.id);
    await core.process(delivery(body, { messageId: 'm1' }));
    const callsBefore = core.directory.calls.length;
    const again = await core.process(delivery(body, { messageId: 'm1' }));
    expect(core.directory.calls).toHaveLength(callsBefore);
    expect(again.disposition).toBe('reject');
    expect(again.record.outcome).toBe('refused');
  });

  it('a replay (new message id) of a permanently failed event runs again', async () => {
    const core = makeCore();
    const body = leaving('nobody@contoso.com');
    await core.process(delivery(body, { messageId: 'm1' }));
    core.directory.addUser({ userPrincipalName: 'nobody@contoso.com' });

    const replay = await core.process(delivery(body, { messageId: 'm2-replay' }));

    expect(replay.disposition).toBe('done');
    expect(replay.record.outcome).toBe('succeeded');
    expect(replay.record.attempts).toBe(2);
    expect(replay.record.errorCode).toBeUndefined();
    expect(replay.record.messageId).toBe('m2-replay');
    expect(core.directory.writes()).toHaveLength(2);
    expect(core.audit.all()).toHaveLength(1);
  });
});

describe('waiting for the write budget', () => {
  it('a deferral by the pacer writes nothing, uses no attempt and parks a copy', async () => {
    const core = makeCore();
    core.pacer.deferNext(30);
    const outcome = await core.handle('employeeLeaving', message(leaving('alice@contoso.com')));
    const { result } = outcome;

    expect(core.directory.writes()).toEqual([]);
    expect(outcome.settlement).toBe('complete');
    expect(result.error?.code).toBe(ErrorCodes.Deferred);
    expect(result.record.attempts).toBe(0);
    expect(result.record.outcome).toBe('in-progress');
    expect(result.record.actions).toEqual([]);
    expect(result.record.claimedBy).toBeUndefined();
    // Retry-After 30 s plus up to a quarter of jitter (random 0.5: 1/8).
    expect(result.retry?.at).toBe(core.clock.iso(33_750));
    const parked = core.scheduler.last();
    expect(parked.message.messageId).toMatch(/^wait-/);
    expect(parked.message.applicationProperties[MessageProperties.attempt]).toBe(0);

    core.clock.set(result.retry?.at ?? '');
    const later = await core.handle('employeeLeaving', core.scheduler.take(parked));
    expect(later.result.record.outcome).toBe('succeeded');
    expect(later.result.record.attempts).toBe(1);
  });

  it('a deferral on a later attempt keeps the earlier outcome, progress and attempt count', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.throttled(30));
    const first = await core.handle('employeeLeaving', message(leaving('alice@contoso.com')));
    core.clock.set(first.result.retry?.at ?? '');
    core.pacer.deferNext(5);
    const deferred = await core.handle(
      'employeeLeaving',
      core.scheduler.take(core.scheduler.last()),
    );

    expect(core.directory.writes()).toHaveLength(2);
    expect(deferred.result.record.attempts).toBe(1);
    expect(deferred.result.record.outcome).toBe('failed');
    expect(statuses(deferred.result.record)).toEqual(statuses(first.result.record));
  });

  it('a replay of an event whose retries ran out waits for budget instead of failing again at once', async () => {
    const core = makeCore({ retry: { ...RETRY, maxAttempts: 1 } });
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const body = mfaEnabled('alice@contoso.com');
    const exhausted = await core.process(delivery(body, { route: 'mfaEnabled' }));
    expect(exhausted.record.errorCode).toBe(ErrorCodes.RetriesExhausted);

    core.pacer.deferNext(5);
    const replay = await core.process(
      delivery(body, { route: 'mfaEnabled', messageId: 'm-replay' }),
    );
    expect(replay.error?.code).toBe(ErrorCodes.Deferred);
    expect(replay.disposition).toBe('done');
    expect(replay.retry).toBeDefined();
  });

  it('deferrals never exhaust the retries', async () => {
    const core = makeCore({ retry: { ...RETRY, maxAttempts: 1 } });
    core.pacer.deferNext(5);
    core.pacer.deferNext(5);
    let outcome = await core.handle('mfaEnabled', message(mfaEnabled('alice@contoso.com')));
    for (let i = 0; i < 2; i++) {
      expect(outcome.result.error?.code).toBe(ErrorCodes.Deferred);
      expect(outcome.settlement).toBe('complete');
      core.clock.set(outcome.result.retry?.at ?? '');
      outcome = await core.handle('mfaEnabled', core.scheduler.take(core.scheduler.last()));
    }
    expect(outcome.result.record.outcome).toBe('succeeded');
    expect(outcome.result.record.attempts).toBe(1);
  });
});
