/**
 * Event identity and claims: duplicates, ids reused for other content or on another route,
 * invalid messages kept apart, and the claim (lease) that keeps two runs of one event from
 * writing to Graph at the same time.
 */
import { latestRecordFor } from '../../shared/core/auditRecords';
import { outageCopyId } from '../../shared/core/eventIdentity';
import { MessageProperties } from '../../shared/core/messaging';
import { ErrorCodes } from '../../shared/core/errors';
import { CLAIM_LEASE_MS } from '../../shared/core/offboard';
import type { AuditRecord } from '../../shared/core/ports';
import { delivery, leaving, makeCore, mfaEnabled, type Core } from './harness';
import { graphErrors } from '../support/fakes';

describe('duplicates', () => {
  it('the same event again (same identity and content) is counted, with no second write', async () => {
    const core = makeCore();
    const body = leaving('alice@contoso.com');
    const first = await core.process(delivery(body, { messageId: 'm1' }));
    const callsAfterFirst = core.directory.calls.length;

    core.clock.advance(60_000);
    const resend = await core.process(delivery({ ...body, time: '2026-11-30T09:01:00Z' }));
    const redelivery = await core.process(delivery(body, { messageId: 'm1' }));

    expect(core.directory.calls).toHaveLength(callsAfterFirst);
    for (const result of [resend, redelivery]) {
      expect(result.duplicate).toBe(true);
      expect(result.disposition).toBe('done');
    }
    const record = core.audit.only(body.id);
    expect(record.duplicates).toBe(2);
    expect(record.lastDuplicateAt).toBe(core.clock.iso());
    expect(record.attempts).toBe(1);
    expect(record.outcome).toBe('succeeded');
    expect(record.lastAttemptAt).toBe(first.record.lastAttemptAt);
  });

  it('a duplicate completes its message', async () => {
    const core = makeCore();
    const body = mfaEnabled('alice@contoso.com');
    await core.handle('mfaEnabled', { body, messageId: 'm1' });
    const again = await core.handle('mfaEnabled', { body, messageId: 'm2' });
    expect(again.settlement).toBe('complete');
    expect(again.result.duplicate).toBe(true);
  });
});

describe('one event id, different events', () => {
  it('same id with different content is a separate record flagged idReused; the first is untouched', async () => {
    const core = makeCore();
    await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'e1' })));
    const aliceBefore = core.audit.only('e1');

    const other = await core.process(delivery(leaving('bob@contoso.com', {}, { id: 'e1' })));

    expect(other.duplicate).toBe(false);
    expect(other.record.outcome).toBe('succeeded');
    expect(other.record.idReused).toBe(true);
    expect(other.record.notes.join(' ')).toMatch(/was used before for different content/);
    expect(core.directory.user('bob@contoso.com').accountEnabled).toBe(false);
    const records = core.audit.all();
    expect(records).toHaveLength(2);
    expect(records[0]?.identityKey).toBe(records[1]?.identityKey);
    expect(records.find((r) => r.user === 'alice@contoso.com')).toEqual(aliceBefore);
  });

  it('other flags for the same user are other content too', async () => {
    const core = makeCore();
    await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'e1' })));
    const stronger = await core.process(
      delivery(leaving('alice@contoso.com', { resetPassword: true }, { id: 'e1' })),
    );
    expect(stronger.duplicate).toBe(false);
    expect(core.directory.callsOf('resetPassword')).toHaveLength(1);
  });

  it('same id on another route is a separate event (no idReused)', async () => {
    const core = makeCore();
    const leaver = await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'e1' })));
    // A second revocation in the same (whole) second could not be proven.
    core.clock.advance(1_000);
    const mfa = await core.process(
      delivery(mfaEnabled('alice@contoso.com', { id: 'e1' }), { route: 'mfaEnabled' }),
    );

    expect(mfa.duplicate).toBe(false);
    expect(mfa.record.outcome).toBe('succeeded');
    expect(mfa.record.identityKey).not.toBe(leaver.record.identityKey);
    expect(mfa.record.idReused).toBeUndefined();
    expect(core.directory.callsOf('revokeSignInSessions')).toHaveLength(2);
  });

  it("an id's record on one route is found by that route, however recent the other route's", async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.throttled(30));
    const departure = await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'e1' })));
    core.clock.advance(5_000);
    await core.process(
      delivery(mfaEnabled('bob@contoso.com', { id: 'e1' }), { route: 'mfaEnabled' }),
    );

    expect(departure.record.outcome).not.toBe('succeeded');
    // Unscoped, the newest record of the id is the other sender's succeeded MFA event.
    expect((await latestRecordFor(core.audit, 'e1'))?.route).toBe('mfaEnabled');
    const ofDeparture = await latestRecordFor(core.audit, 'e1', 'employeeLeaving');
    expect(ofDeparture?.identityKey).toBe(departure.record.identityKey);
    expect(ofDeparture?.outcome).toBe(departure.record.outcome);
  });

  it('same id from another source is a separate event', async () => {
    const core = makeCore();
    await core.process(
      delivery(mfaEnabled('alice@contoso.com', { id: 'e1' }), { route: 'mfaEnabled' }),
    );
    const other = await core.process(
      delivery(mfaEnabled('alice@contoso.com', { id: 'e1', source: '/other' }), {
        route: 'mfaEnabled',
      }),
    );
    expect(other.duplicate).toBe(false);
    expect(core.audit.all()).toHaveLength(2);
  });
});

describe('invalid messages', () => {
  async function withValidE1(): Promise<{ core: Core; valid: AuditRecord }> {
    const core = makeCore();
    await core.process(delivery(leaving('alice@contoso.com', {}, { id: 'e1' })));
    return { core, valid: core.audit.only('e1') };
  }

  it('an invalid message reusing a valid event id gets a record of its own and no Graph call', async () => {
    const { core, valid } = await withValidE1();
    const callsBefore = core.directory.calls.length;
    const bad = await core.handle('employeeLeaving', {
      body: leaving('alice/../bob@contoso.com', {}, { id: 'e1' }),
      messageId: 'm-bad',
    });

    expect(core.directory.calls).toHaveLength(callsBefore);
    expect(bad.settlement).toBe('abandon');
    expect(bad.result.disposition).toBe('reject');
    expect(bad.result.error?.code).toBe(ErrorCodes.InvalidEvent);
    expect(bad.result.error?.message).toMatch(/data\.user must not contain "\/"/);
    expect(bad.result.record.contentDigest).toBe('invalid');
    expect(bad.result.record.identityKey).not.toBe(valid.identityKey);
    expect(bad.result.record.eventId).toBe('e1');
    expect(bad.result.record.outcome).toBe('failed');
    expect(bad.result.record.retryable).toBe(false);
    const records = core.audit.all();
    expect(records).toHaveLength(2);
    expect(records.find((r) => r.contentDigest !== 'invalid')).toEqual(valid);
  });

  it('an event of a kind that belongs on another queue is invalid there', async () => {
    const core = makeCore();
    const result = await core.process(delivery(mfaEnabled('alice@contoso.com')));
    expect(result.error?.code).toBe(ErrorCodes.InvalidEvent);
    expect(result.error?.message).toMatch(/does not belong on this queue/);
    expect(core.directory.calls).toEqual([]);
  });

  it('a body that is not JSON is keyed by its message id', async () => {
    const core = makeCore();
    const result = await core.process(delivery('{not json', { messageId: 'm-garbage' }));
    expect(result.record.eventId).toBe('message:m-garbage');
    expect(result.error?.message).toMatch(/not JSON/);
  });

  it('the same invalid message delivered again counts a duplicate on its own record', async () => {
    const core = makeCore();
    const body = leaving('not-a-user');
    await core.process(delivery(body, { messageId: 'm-bad' }));
    const again = await core.process(delivery(body, { messageId: 'm-bad' }));
    expect(again.record).toMatchObject({ attempts: 1, duplicates: 1 });
    expect(core.audit.all()).toHaveLength(1);
  });

  it("an invalid message's outage copy lands on its record; a forged link does not", async () => {
    const core = makeCore();
    const body = leaving('not-a-user');
    await core.process(delivery(body, { messageId: 'm-bad' }));
    const original = { [MessageProperties.originalMessageId]: 'm-bad' };
    // The copy the app parks after an audit outage: its id is derived from the original's.
    const copy = await core.process(
      delivery(body, { messageId: outageCopyId('m-bad', 2), properties: original }),
    );
    expect(copy.record).toMatchObject({ messageId: 'm-bad', duplicates: 1 });
    expect(core.audit.all()).toHaveLength(1);
    // Another sender naming m-bad in the property gets a record of its own; m-bad's stands.
    const forged = leaving('also not a user');
    await core.process(delivery(forged, { messageId: 'm-forged', properties: original }));
    expect(core.audit.all()).toHaveLength(2);
    expect(core.audit.all().find((r) => r.messageId === 'm-bad')?.duplicates).toBe(1);
  });
});

describe('claims', () => {
  /**
   * Leaves a live claim by run-A on the event: its run wrote the claim, then the audit failed on
   * its final write (so nothing else of it was recorded).
   */
  async function claimedByRunA(body: unknown): Promise<Core> {
    const core = makeCore();
    core.audit.fail('write', 1, 1);
    await expect(
      core.process(delivery(body, { route: 'mfaEnabled', messageId: 'm1', runId: 'run-A' })),
    ).rejects.toMatchObject({ code: ErrorCodes.AuditUnavailable, retryable: true });
    return core;
  }

  it('a live claim by another run defers: a copy is parked, no attempt used, no write', async () => {
    const body = mfaEnabled('alice@contoso.com');
    const core = await claimedByRunA(body);
    const before = core.audit.all();
    const writesBefore = core.audit.writes.length;
    const callsBefore = core.directory.calls.length;

    const result = await core.process(
      delivery(body, { route: 'mfaEnabled', messageId: 'm2', runId: 'run-B' }),
    );

    expect(before[0]?.claimedBy).toBe('run-A');
    expect(core.directory.calls).toHaveLength(callsBefore);
    expect(core.audit.writes).toHaveLength(writesBefore);
    expect(core.audit.all()).toEqual(before);
    expect(result.error?.code).toBe(ErrorCodes.Deferred);
    expect(result.error?.retryable).toBe(true);
    expect(result.disposition).toBe('done');
    expect(result.record.attempts).toBe(0);
    // At most 15 s, with jitter of +-25 % (random 0.5: none).
    expect(result.retry?.at).toBe(core.clock.iso(15_000));
    expect(core.scheduler.last().message.messageId).toMatch(/^wait-/);
  });

  it('an expired claim is taken over', async () => {
    const body = mfaEnabled('alice@contoso.com');
    const core = await claimedByRunA(body);
    core.clock.advance(CLAIM_LEASE_MS + 1);

    const result = await core.process(
      delivery(body, { route: 'mfaEnabled', messageId: 'm2', runId: 'run-B' }),
    );

    expect(result.record.outcome).toBe('succeeded');
    expect(result.record.attempts).toBe(1);
    expect(result.record.claimedBy).toBeUndefined();
    expect(result.record.notes.join(' ')).not.toMatch(/ended without recording/);
  });

  it('a claim handed over (Delivery.runId equal to claimedBy) continues at once and counts the lost attempt', async () => {
    const body = mfaEnabled('alice@contoso.com');
    const core = await claimedByRunA(body);
    const revokesBefore = core.directory.callsOf('revokeSignInSessions').length;

    core.clock.advance(1_000);
    const result = await core.process(
      delivery(body, { route: 'mfaEnabled', messageId: 'm-copy', runId: 'run-A' }),
    );

    expect(revokesBefore).toBe(1);
    expect(core.directory.callsOf('revokeSignInSessions')).toHaveLength(2);
    expect(result.record.outcome).toBe('succeeded');
    expect(result.record.attempts).toBe(2);
    expect(result.record.notes.join(' ')).toMatch(/ended without recording its result/);
    expect(result.record.claimedBy).toBeUndefined();
  });

  it('a run that loses the race to claim a new event defers instead of writing', async () => {
    const core = makeCore();
    // Another instance claims the event between this run's read and its create.
    core.audit.beforeWrite((log, record) =>
      log.force({ ...record, claimedBy: 'run-other', messageId: 'm-other' }),
    );
    const result = await core.process(delivery(leaving('alice@contoso.com'), { runId: 'run-B' }));

    expect(core.audit.conflicts).toBe(1);
    expect(core.directory.calls).toEqual([]);
    expect(result.error?.code).toBe(ErrorCodes.Deferred);
    expect(core.audit.all()[0]?.claimedBy).toBe('run-other');
  });

  it('two deliveries of one event at the same time: exactly one writes to Graph', async () => {
    const core = makeCore();
    const body = leaving('alice@contoso.com', { resetPassword: true });
    const results = await Promise.all([
      core.process(delivery(body, { messageId: 'm1' })),
      core.process(delivery(body, { messageId: 'm2' })),
    ]);

    expect(core.directory.callsOf('resetPassword')).toHaveLength(1);
    expect(core.directory.writes()).toHaveLength(3);
    expect(results.map((r) => r.error?.code ?? r.record.outcome).sort()).toEqual([
      ErrorCodes.Deferred,
      'succeeded',
    ]);
    expect(core.audit.only(body.id).outcome).toBe('succeeded');
  });

  it("a run that outlived its claim records its result but leaves the new holder's claim", async () => {
    const core = makeCore();
    const later = core.clock.iso(CLAIM_LEASE_MS * 2);
    // After the claim write, another run takes the event over before this run's final write.
    core.audit.beforeWrite(
      (log, record) =>
        log.force({
          ...record,
          outcome: 'in-progress',
          claimedBy: 'run-late',
          claimExpiresAt: later,
        }),
      1,
    );
    const result = await core.process(delivery(leaving('alice@contoso.com'), { runId: 'run-B' }));

    const stored = core.audit.only(result.record.eventId);
    expect(stored.outcome).toBe('succeeded');
    expect(stored.claimedBy).toBe('run-late');
    expect(stored.claimExpiresAt).toBe(later);
    expect(stored.notes.join(' ')).toMatch(/outlived its claim/);
  });
});
