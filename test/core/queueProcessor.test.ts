/**
 * The settlement: complete or abandon from the use case's result, and an audit store outage,
 * which parks a copy that inherits the run's claim instead of burning delivery count.
 */
import { ErrorCodes } from '../../shared/core/errors';
import { MessageProperties } from '../../shared/core/messaging';
import { graphErrors } from '../support/fakes';
import { QUEUES, RETRY, leaving, makeCore, message, mfaEnabled } from './harness';

describe('settlement', () => {
  it('completes a finished event and abandons a permanent failure', async () => {
    const core = makeCore();
    const done = await core.handle('employeeLeaving', message(leaving('alice@contoso.com')));
    const invalid = await core.handle('employeeLeaving', message({ not: 'an event' }));
    const refused = await core.handle(
      'employeeLeaving',
      message(leaving('breakglass@contoso.com')),
    );

    expect(done.settlement).toBe('complete');
    expect(invalid.settlement).toBe('abandon');
    expect(refused.settlement).toBe('abandon');
    expect(refused.result.error?.code).toBe(ErrorCodes.ProtectedAccount);
  });

  it('the attempt counter on a message is a hint: the audit record counts attempts', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const outcome = await core.handle(
      'mfaEnabled',
      message(mfaEnabled('alice@contoso.com'), {
        properties: { [MessageProperties.attempt]: 99 },
      }),
    );
    expect(outcome.result.record.attempts).toBe(1);
    expect(outcome.result.record.errorCode).toBe(ErrorCodes.GraphUnavailable);
    expect(outcome.settlement).toBe('complete');
    expect(core.scheduler.last().message.applicationProperties[MessageProperties.attempt]).toBe(2);
  });
});

describe('audit outage', () => {
  it('an outage on the final write parks a copy that carries the claim, and the copy continues at once', async () => {
    const core = makeCore();
    core.audit.fail('write', 1, 1);
    const body = mfaEnabled('alice@contoso.com');
    const outcome = await core.handle('mfaEnabled', { body, messageId: 'm1' });

    expect(outcome.settlement).toBe('complete');
    expect(outcome.result.error?.code).toBe(ErrorCodes.AuditUnavailable);
    expect(outcome.result.record.eventId).toBe(body.id);
    const claimed = core.audit.only(body.id);
    expect(claimed.outcome).toBe('in-progress');
    expect(claimed.claimedBy).toBeDefined();
    const copy = core.scheduler.last();
    expect(copy.queue).toBe(QUEUES.mfaEnabled);
    expect(copy.message.messageId).toBe(outcome.result.retry?.messageId);
    expect(copy.message.messageId).toMatch(/^outage-2-/);
    expect(copy.message.applicationProperties).toMatchObject({
      [MessageProperties.attempt]: 2,
      [MessageProperties.originalMessageId]: 'm1',
      [MessageProperties.claimHandover]: claimed.claimedBy,
    });
    expect(copy.at.toISOString()).toBe(core.clock.iso(7_500));

    // Well within the lease: without the handover the copy would have to wait for it.
    core.clock.set(copy.at);
    const next = await core.handle('mfaEnabled', core.scheduler.take(copy));
    expect(next.settlement).toBe('complete');
    expect(next.result.record.outcome).toBe('succeeded');
    expect(next.result.record.attempts).toBe(2);
    expect(next.result.record.notes.join(' ')).toMatch(/ended without recording its result/);
    expect(core.directory.callsOf('revokeSignInSessions')).toHaveLength(2);
  });

  it('the handed-over claim belongs to that one copy: its own retry copy does not carry it', async () => {
    const core = makeCore();
    core.audit.fail('write', 1, 1);
    await core.handle('mfaEnabled', message(mfaEnabled('alice@contoso.com')));
    const outageCopy = core.scheduler.last();
    core.clock.set(outageCopy.at);
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());

    const next = await core.handle('mfaEnabled', core.scheduler.take(outageCopy));

    expect(next.result.record.errorCode).toBe(ErrorCodes.GraphUnavailable);
    const retryCopy = core.scheduler.last();
    expect(retryCopy.message.messageId).toMatch(/^retry-/);
    expect(retryCopy.message.applicationProperties).not.toHaveProperty(
      MessageProperties.claimHandover,
    );
  });

  it('an outage before the claim parks a copy; no Graph call was made', async () => {
    const core = makeCore();
    core.audit.fail('read', 1);
    const outcome = await core.handle('employeeLeaving', message(leaving('alice@contoso.com')));

    expect(outcome.settlement).toBe('complete');
    expect(core.directory.calls).toEqual([]);
    expect(core.audit.all()).toEqual([]);
    core.clock.set(core.scheduler.last().at);
    const next = await core.handle('employeeLeaving', core.scheduler.take(core.scheduler.last()));
    expect(next.result.record.outcome).toBe('succeeded');
    expect(next.result.record.attempts).toBe(1);
  });

  it(`an outage on the last allowed attempt (RETRY_MAX_ATTEMPTS ${RETRY.maxAttempts}) is thrown: Service Bus redelivers or dead-letters`, async () => {
    const core = makeCore();
    core.audit.fail('read', 1);
    await expect(
      core.handle(
        'employeeLeaving',
        message(leaving('alice@contoso.com'), {
          properties: { [MessageProperties.attempt]: RETRY.maxAttempts },
        }),
      ),
    ).rejects.toMatchObject({ code: ErrorCodes.AuditUnavailable });
    expect(core.scheduler.scheduled).toEqual([]);
  });

  it('an outage when no copy can be parked is thrown (abandon)', async () => {
    const core = makeCore();
    core.audit.fail('read', 1);
    core.scheduler.failNext();
    await expect(
      core.handle('employeeLeaving', message(leaving('alice@contoso.com'))),
    ).rejects.toMatchObject({ code: ErrorCodes.AuditUnavailable, retryable: true });
  });

  it("a handover id that is not the claim holder's does not take a live claim", async () => {
    const core = makeCore();
    core.audit.fail('write', 1, 1);
    const body = mfaEnabled('alice@contoso.com');
    await core.handle('mfaEnabled', { body, messageId: 'm1' });
    const callsBefore = core.directory.calls.length;

    const forged = await core.handle('mfaEnabled', {
      body,
      messageId: 'm-forged',
      properties: { [MessageProperties.claimHandover]: 'guessed-run-id' },
    });

    expect(forged.result.error?.code).toBe(ErrorCodes.Deferred);
    expect(core.directory.calls).toHaveLength(callsBefore);
  });
});
