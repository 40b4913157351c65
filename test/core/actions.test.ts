/**
 * The decision rules of one run against the directory: which actions, for which users, how each
 * failure is classified, how the revocation is proven, dry run and the run's time budget.
 */
import { ErrorCodes } from '../../shared/core/errors';
import { RUN_BUDGET_MS } from '../../shared/core/offboard';
import { graphErrors } from '../support/fakes';
import {
  KNOWN_PASSWORD,
  PROTECTED_ID,
  PROTECTED_UPN,
  delivery,
  leaving,
  makeCore,
  mfaEnabled,
  statuses,
} from './harness';

describe('planned actions', () => {
  it('employee.leaving disables and revokes by default, in that order, and proves the revocation', async () => {
    const core = makeCore();
    const result = await core.process(delivery(leaving('alice@contoso.com')));

    expect(result.disposition).toBe('done');
    expect(result.record.requestedActions).toEqual(['disableAccount', 'revokeSignInSessions']);
    expect(statuses(result.record)).toEqual({
      disableAccount: 'succeeded',
      revokeSignInSessions: 'succeeded',
    });
    expect(core.directory.writes().map((c) => c.operation)).toEqual([
      'disableAccount',
      'revokeSignInSessions',
    ]);
    expect(core.directory.user('alice@contoso.com').accountEnabled).toBe(false);
    expect(result.record.outcome).toBe('succeeded');
    expect(result.record.attempts).toBe(1);
    expect(result.record.verification).toEqual({
      verified: true,
      signInSessionsValidFrom: '2026-11-30T09:00:00Z',
      previousSignInSessionsValidFrom: '2026-01-01T00:00:00Z',
    });
    expect(result.record.objectId).toBe(core.users.alice.id);
    // What was returned is what was stored, and the claim is released.
    expect(core.audit.only(result.record.eventId)).toEqual(result.record);
    expect(result.record.claimedBy).toBeUndefined();
  });

  it('resetPassword: true adds a reset between disable and revoke', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(leaving('alice@contoso.com', { resetPassword: true })),
    );

    expect(result.record.requestedActions).toEqual([
      'disableAccount',
      'resetPassword',
      'revokeSignInSessions',
    ]);
    expect(core.directory.writes().map((c) => c.operation)).toEqual([
      'disableAccount',
      'resetPassword',
      'revokeSignInSessions',
    ]);
    expect(result.record.outcome).toBe('succeeded');
  });

  it('disableAccount: false revokes only', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(leaving('alice@contoso.com', { disableAccount: false })),
    );

    expect(result.record.requestedActions).toEqual(['revokeSignInSessions']);
    expect(core.directory.writes().map((c) => c.operation)).toEqual(['revokeSignInSessions']);
    expect(core.directory.user('alice@contoso.com').accountEnabled).toBe(true);
  });

  it('mfa.enabled revokes sessions and nothing else', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(mfaEnabled('alice@contoso.com'), { route: 'mfaEnabled' }),
    );

    expect(result.record.requestedActions).toEqual(['revokeSignInSessions']);
    expect(core.directory.writes().map((c) => c.operation)).toEqual(['revokeSignInSessions']);
    expect(result.record.outcome).toBe('succeeded');
    expect(result.record.route).toBe('mfaEnabled');
    expect(core.pacer.reservations).toEqual([{ lane: 'wave', writes: 1, granted: true }]);
  });

  it('reserves the writes it will make in the departure lane before the first write', async () => {
    const core = makeCore();
    await core.process(delivery(leaving('alice@contoso.com', { resetPassword: true })));
    expect(core.pacer.reservations).toEqual([{ lane: 'departure', writes: 3, granted: true }]);
  });

  it('a run by hand (command) accepts every kind', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(mfaEnabled('alice@contoso.com'), { route: 'command' }),
    );
    expect(result.record.outcome).toBe('succeeded');
    expect(result.record.route).toBe('mfaEnabled');
  });
});

describe('protected accounts never reach a write', () => {
  it('refuses a protected UPN as given (any case) before any Graph call', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(leaving(PROTECTED_UPN.toUpperCase(), { resetPassword: true })),
    );

    expect(core.directory.calls).toEqual([]);
    expect(result.disposition).toBe('reject');
    expect(result.error?.code).toBe(ErrorCodes.ProtectedAccount);
    expect(result.error?.retryable).toBe(false);
    expect(result.record.outcome).toBe('refused');
    expect(result.record.errorCode).toBe(ErrorCodes.ProtectedAccount);
    expect(statuses(result.record)).toEqual({
      disableAccount: 'not-attempted',
      resetPassword: 'not-attempted',
      revokeSignInSessions: 'not-attempted',
    });
    expect(core.directory.user('breakglass@contoso.com').accountEnabled).toBe(true);
  });

  it('refuses a protected object id as given before any Graph call', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(mfaEnabled(PROTECTED_ID.toUpperCase()), { route: 'mfaEnabled' }),
    );
    expect(core.directory.calls).toEqual([]);
    expect(result.record.outcome).toBe('refused');
  });

  it('refuses a user named by UPN whose object id is protected, after reading only', async () => {
    const core = makeCore();
    const result = await core.process(delivery(leaving('vault.admin@contoso.com')));

    expect(core.directory.calls.map((c) => c.operation)).toEqual(['getUser']);
    expect(result.record.outcome).toBe('refused');
    expect(result.record.objectId).toBe(PROTECTED_ID);
    expect(core.directory.user(PROTECTED_ID).accountEnabled).toBe(true);
  });

  it('refuses a user named by object id whose UPN is protected, after reading only', async () => {
    const core = makeCore();
    const result = await core.process(delivery(leaving(core.users.breakglass.id)));

    expect(core.directory.writes()).toEqual([]);
    expect(result.record.outcome).toBe('refused');
    expect(result.record.userPrincipalName).toBe('breakglass@contoso.com');
  });

  it('refuses a protected user in dry run too (the refusal is what the audit must show)', async () => {
    const core = makeCore({ dryRun: true });
    const result = await core.process(delivery(leaving(PROTECTED_UPN)));
    expect(result.record.outcome).toBe('refused');
    expect(core.directory.calls).toEqual([]);
  });
});

describe('kinds of user', () => {
  it('synced user: disable and reset are OnPremisesMastered without a Graph write, revoke is still done', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(leaving('dave.synced@contoso.com', { resetPassword: true })),
    );

    expect(core.directory.writes().map((c) => c.operation)).toEqual(['revokeSignInSessions']);
    expect(statuses(result.record)).toEqual({
      disableAccount: 'failed',
      resetPassword: 'failed',
      revokeSignInSessions: 'succeeded',
    });
    expect(result.record.actions[0]?.errorCode).toBe(ErrorCodes.OnPremisesMastered);
    expect(result.record.verification?.verified).toBe(true);
    expect(result.record.outcome).toBe('failed');
    expect(result.record.errorCode).toBe(ErrorCodes.OnPremisesMastered);
    expect(result.record.retryable).toBe(false);
    expect(result.disposition).toBe('reject');
    expect(core.scheduler.scheduled).toEqual([]);
  });

  it('synced user on mfa.enabled: only the revocation is asked for, so it succeeds', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(mfaEnabled('dave.synced@contoso.com'), { route: 'mfaEnabled' }),
    );
    expect(result.record.outcome).toBe('succeeded');
  });

  it('guest user: the record notes that revocation does not reach the home tenant', async () => {
    const core = makeCore();
    const leaver = await core.process(delivery(leaving(core.users.carol.userPrincipalName)));
    expect(leaver.record.outcome).toBe('succeeded');
    expect(leaver.record.notes.join(' ')).toMatch(
      /Guest user: .*home tenant.*disabling the account is what blocks access/,
    );

    const mfa = await core.process(
      delivery(mfaEnabled(core.users.carol.id), { route: 'mfaEnabled' }),
    );
    expect(mfa.record.notes.join(' ')).toMatch(
      /not being disabled, so the guest can sign in again/,
    );
  });

  it('a member gets no guest note', async () => {
    const core = makeCore();
    const result = await core.process(delivery(leaving('alice@contoso.com')));
    expect(result.record.notes.join(' ')).not.toMatch(/Guest/);
  });

  it('403 on the reset of an admin: Forbidden, permanent, the other actions still done', async () => {
    const core = makeCore();
    core.directory.mayManageAdmins = false;
    const result = await core.process(
      delivery(leaving('erin.admin@contoso.com', { disableAccount: false, resetPassword: true })),
    );

    expect(statuses(result.record)).toEqual({
      resetPassword: 'failed',
      revokeSignInSessions: 'succeeded',
    });
    expect(result.record.actions[0]?.errorCode).toBe(ErrorCodes.Forbidden);
    expect(result.record.verification?.verified).toBe(true);
    expect(result.record.outcome).toBe('failed');
    expect(result.record.errorCode).toBe(ErrorCodes.Forbidden);
    expect(result.record.retryable).toBe(false);
    expect(result.disposition).toBe('reject');
    expect(core.scheduler.scheduled).toEqual([]);
    expect(result.record.graphRequestIds).toContain('req-forbidden');
  });

  it('a permanent failure next to a transient one is retried (the transient part may pass)', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const result = await core.process(
      delivery(leaving('erin.admin@contoso.com', { disableAccount: false, resetPassword: true })),
    );
    expect(statuses(result.record)).toEqual({
      resetPassword: 'failed',
      revokeSignInSessions: 'failed',
    });
    expect(result.error?.code).toBe(ErrorCodes.GraphUnavailable);
    expect(result.error?.retryable).toBe(true);
    expect(result.retry).toBeDefined();
  });

  it('unknown user: UserNotFound, permanent, nothing attempted', async () => {
    const core = makeCore();
    const result = await core.process(delivery(leaving('nobody@contoso.com')));

    expect(core.directory.writes()).toEqual([]);
    expect(result.disposition).toBe('reject');
    expect(result.record.outcome).toBe('failed');
    expect(result.record.errorCode).toBe(ErrorCodes.UserNotFound);
    expect(result.record.retryable).toBe(false);
    expect(statuses(result.record)).toEqual({
      disableAccount: 'not-attempted',
      revokeSignInSessions: 'not-attempted',
    });
    expect(core.scheduler.scheduled).toEqual([]);
  });
});

describe('the audit tells the truth about synced users', () => {
  // FOUND: the OnPremisesMastered message of disable/reset always ends "Sessions were still
  // revoked." (shared/core/flow.ts onPremisesMastered), also when nothing was revoked.
  function claimsRevocation(record: {
    actions: Array<{ message?: string }>;
    notes: string[];
  }): boolean {
    const said = [...record.actions.map((a) => a.message ?? ''), ...record.notes];
    return said.some((text) => /sessions were (still )?revoked/i.test(text));
  }

  it('says sessions were revoked when they were', async () => {
    const core = makeCore();
    const result = await core.process(delivery(leaving('dave.synced@contoso.com')));
    expect(statuses(result.record).revokeSignInSessions).toBe('succeeded');
    expect(claimsRevocation(result.record)).toBe(true);
  });

  it('dry run: does not say sessions were revoked (nothing was written)', async () => {
    const core = makeCore({ dryRun: true });
    const result = await core.process(delivery(leaving('dave.synced@contoso.com')));
    expect(core.directory.writes()).toEqual([]);
    expect(claimsRevocation(result.record)).toBe(false);
  });

  it('a failed revocation: does not say sessions were revoked', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.throttled(30));
    const result = await core.process(delivery(leaving('dave.synced@contoso.com')));
    expect(statuses(result.record).revokeSignInSessions).toBe('failed');
    expect(claimsRevocation(result.record)).toBe(false);
  });
});

describe('verification', () => {
  it('a revocation whose signInSessionsValidFromDateTime did not move is VerificationFailed, retryable', async () => {
    const core = makeCore();
    // Graph keeps whole seconds: a revocation in the same second as the last one cannot be told apart.
    core.directory.user('alice@contoso.com').signInSessionsValidFromDateTime =
      '2026-11-30T09:00:00Z';
    const result = await core.process(
      delivery(mfaEnabled('alice@contoso.com'), { route: 'mfaEnabled' }),
    );

    expect(statuses(result.record)).toEqual({ revokeSignInSessions: 'succeeded' });
    expect(result.record.verification).toEqual({
      verified: false,
      signInSessionsValidFrom: '2026-11-30T09:00:00Z',
      previousSignInSessionsValidFrom: '2026-11-30T09:00:00Z',
    });
    expect(result.record.outcome).toBe('failed');
    expect(result.record.errorCode).toBe(ErrorCodes.VerificationFailed);
    expect(result.record.retryable).toBe(true);
    expect(result.retry).toBeDefined();
  });

  it('a replica that has not seen the revocation yet is no proof; the next attempt proves it', async () => {
    const core = makeCore();
    core.directory.lagAfterRevoke('alice@contoso.com', 1);
    const first = await core.handle('mfaEnabled', {
      body: mfaEnabled('alice@contoso.com'),
      messageId: 'm1',
    });
    expect(first.result.record.errorCode).toBe(ErrorCodes.VerificationFailed);
    expect(first.settlement).toBe('complete');

    core.clock.set(first.result.retry?.at ?? '');
    const copy = core.scheduler.take(core.scheduler.last());
    const second = await core.handle('mfaEnabled', copy);
    expect(second.result.record.outcome).toBe('succeeded');
    expect(second.result.record.verification?.verified).toBe(true);
    expect(second.result.record.attempts).toBe(2);
  });

  it("a failed read-back is no proof: unverified, with the read's own code, retryability and Retry-After", async () => {
    const core = makeCore();
    // The first read resolves the user; the second is the read-back.
    core.directory.failNext('getUser', () => graphErrors.throttled(40), { skip: 1 });
    const result = await core.process(
      delivery(mfaEnabled('alice@contoso.com'), { route: 'mfaEnabled' }),
    );

    expect(core.directory.calls.map((c) => [c.operation, c.result])).toEqual([
      ['getUser', 'ok'],
      ['revokeSignInSessions', 'ok'],
      ['getUser', ErrorCodes.Throttled],
    ]);
    expect(result.record.verification).toEqual({
      verified: false,
      previousSignInSessionsValidFrom: '2026-01-01T00:00:00Z',
    });
    expect(result.record.outcome).toBe('failed');
    expect(result.record.errorCode).toBe(ErrorCodes.Throttled);
    expect(result.record.retryable).toBe(true);
    expect(result.retry?.at).toBe(core.clock.iso(40_000));
  });
});

describe('dry run', () => {
  it('writes nothing to Graph and records what would run', async () => {
    const core = makeCore({ dryRun: true });
    const result = await core.process(
      delivery(leaving('alice@contoso.com', { resetPassword: true })),
    );

    expect(core.directory.writes()).toEqual([]);
    expect(core.pacer.reservations).toEqual([]);
    expect(result.record.outcome).toBe('dry-run');
    expect(result.record.dryRun).toBe(true);
    expect(statuses(result.record)).toEqual({
      disableAccount: 'would-run',
      resetPassword: 'would-run',
      revokeSignInSessions: 'would-run',
    });
    expect(result.disposition).toBe('done');
    expect(core.directory.user('alice@contoso.com').accountEnabled).toBe(true);
  });

  it("shows a synced user's disable as OnPremisesMastered, still without writing", async () => {
    const core = makeCore({ dryRun: true });
    const result = await core.process(delivery(leaving('dave.synced@contoso.com')));
    expect(core.directory.writes()).toEqual([]);
    expect(statuses(result.record)).toEqual({
      disableAccount: 'failed',
      revokeSignInSessions: 'would-run',
    });
    expect(result.record.outcome).toBe('dry-run');
  });
});

describe('run budget', () => {
  it(`starts no Graph write after RUN_BUDGET_MS (${RUN_BUDGET_MS / 1000} s); the rest is retried`, async () => {
    const core = makeCore();
    // Each call takes 40 % of the budget: the read and the disable fit, the reset starts at 80 %,
    // and the revoke would start at 120 %.
    core.directory.latencyMs = RUN_BUDGET_MS * 0.4;
    const result = await core.process(
      delivery(leaving('alice@contoso.com', { resetPassword: true })),
    );

    expect(core.directory.writes().map((c) => c.operation)).toEqual([
      'disableAccount',
      'resetPassword',
    ]);
    expect(statuses(result.record)).toEqual({
      disableAccount: 'succeeded',
      resetPassword: 'succeeded',
      revokeSignInSessions: 'failed',
    });
    expect(result.record.actions[2]?.message).toMatch(/budget/);
    expect(result.record.errorCode).toBe(ErrorCodes.GraphUnavailable);
    expect(result.record.retryable).toBe(true);
    expect(result.retry).toBeDefined();
  });

  it('a run within its budget writes everything', async () => {
    const core = makeCore();
    core.directory.latencyMs = RUN_BUDGET_MS * 0.2;
    const result = await core.process(
      delivery(leaving('alice@contoso.com', { resetPassword: true })),
    );
    expect(core.directory.writes()).toHaveLength(3);
    expect(result.record.outcome).toBe('succeeded');
  });
});

describe('secrets', () => {
  it('the generated password reaches Graph as a Secret and appears in no record or message', async () => {
    const core = makeCore();
    core.directory.failNext('revokeSignInSessions', () => graphErrors.unavailable());
    const result = await core.process(
      delivery(leaving('alice@contoso.com', { resetPassword: true })),
    );

    expect(core.directory.callsOf('resetPassword')).toHaveLength(1);
    const everything = JSON.stringify({
      result,
      records: core.audit.all(),
      writes: core.audit.writes,
      scheduled: core.scheduler.scheduled,
      calls: core.directory.calls,
    });
    expect(everything).not.toContain(KNOWN_PASSWORD);
  });
});
