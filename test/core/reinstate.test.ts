/**
 * Reinstatement (employee.reinstated, `offboard reinstate`): re-enables only an account this
 * app disabled, refuses protected accounts and (without --force) everything else, never races a
 * departure, and says what it cannot restore.
 */
import { plannedActions } from '../../shared/core/actions';
import { ErrorCodes } from '../../shared/core/errors';
import { graphErrors } from '../support/fakes';
import {
  PROTECTED_UPN,
  delivery,
  leaving,
  makeCore,
  message,
  reinstatedEvent,
  statuses,
  type Core,
} from './harness';

/** An employee.reinstated event as HR sends it (or the CLI builds it). */
function reinstated(
  user: string,
  data: { reason?: string; departureEvent?: string } = {},
  envelope: { id?: string; type?: string } = {},
) {
  return reinstatedEvent(user, data, envelope);
}

/** Alice's departure, run now: her account disabled by this app. */
async function departed(core: Core, data: { resetPassword?: boolean } = {}, id = 'dep-alice') {
  const result = await core.process(delivery(leaving('alice@contoso.com', data, { id })));
  expect(result.record.outcome).toBe('succeeded');
  expect(core.directory.user('alice@contoso.com').accountEnabled).toBe(false);
  core.clock.advance(60_000);
  return result.record;
}

const writes = (core: Core) => core.directory.writes().map((c) => `${c.operation} ${c.target}`);

/** The operator a run by hand names when it forces (`offboard reinstate --force`). */
const OPERATOR = {
  by: 'ops.oncall',
  reason: 'rehire confirmed by HR',
  at: '2026-12-05T03:00:00.000Z',
};

describe('the plan', () => {
  it('employee.reinstated asks to re-enable the account and nothing else; no other kind ever does', () => {
    expect(plannedActions({ kind: 'employee.reinstated' })).toEqual(['enableAccount']);
    expect(plannedActions({ kind: 'mfa.enabled' })).toEqual(['revokeSignInSessions']);
    expect(plannedActions({ kind: 'employee.leaving.cancelled' })).toEqual([]);
    for (const disableAccount of [true, false])
      for (const resetPassword of [true, false])
        expect(
          plannedActions({ kind: 'employee.leaving', flags: { disableAccount, resetPassword } }),
        ).not.toContain('enableAccount');
  });
});

describe('reinstating a departed user', () => {
  it('re-enables exactly the account this app disabled, audited as its own event', async () => {
    const core = makeCore();
    const departure = await departed(core);
    const before = writes(core).length;

    const outcome = await core.handle(
      'employeeLeaving',
      message(reinstated('alice@contoso.com', { reason: 'rehired' })),
    );
    const record = outcome.result.record;

    expect(outcome.settlement).toBe('complete');
    expect(record.outcome).toBe('succeeded');
    expect(record.requestedActions).toEqual(['enableAccount']);
    expect(statuses(record)).toEqual({ enableAccount: 'succeeded' });
    expect(writes(core).slice(before)).toEqual([`enableAccount ${core.users.alice.id}`]);
    expect(core.directory.user('alice@contoso.com').accountEnabled).toBe(true);
    expect(core.users.bob.accountEnabled).toBe(true);
    expect(record.objectId).toBe(core.users.alice.id);
    expect(record.reason).toBe('rehired');
    const notes = record.notes.join(' ');
    expect(notes).toContain(`Undoes departure ${departure.eventId}`);
    expect(notes).toMatch(/password was not reset by this app/);
    expect(notes).toMatch(/sessions revoked earlier stay revoked/);
    expect(notes).toMatch(/Next \(helpdesk\): the user signs in again/);
    // Its own record; the departure's record is left as it was.
    expect(record.eventId).not.toBe(departure.eventId);
    expect(core.audit.only(departure.eventId)).toMatchObject({ outcome: 'succeeded' });
    expect(core.pacer.reservations.at(-1)).toEqual({ lane: 'departure', writes: 1, granted: true });
  });

  it('after a departure that reset the password, tells the helpdesk to issue a Temporary Access Pass', async () => {
    const core = makeCore();
    const departure = await departed(core, { resetPassword: true });

    const result = await core.process(delivery(reinstated(core.users.alice.id)));

    expect(result.record.outcome).toBe('succeeded');
    const notes = result.record.notes.join(' ');
    expect(notes).toContain(`the password reset by departure ${departure.eventId} stays reset`);
    expect(notes).toMatch(/issue a Temporary Access Pass or a new password/);
  });

  it('a duplicate of the reinstatement writes nothing again', async () => {
    const core = makeCore();
    await departed(core);
    const event = reinstated('alice@contoso.com', {}, { id: 'r-dup' });
    await core.process(delivery(event));
    const before = writes(core).length;

    const again = await core.process(delivery(event));

    expect(again.duplicate).toBe(true);
    expect(writes(core)).toHaveLength(before);
  });

  it('keeps the departure event an operator named as a note', async () => {
    const core = makeCore();
    const departure = await departed(core);
    const named = await core.process(
      delivery(reinstated('alice@contoso.com', { departureEvent: departure.eventId })),
    );
    expect(named.record.notes.join(' ')).toContain(`Names departure ${departure.eventId}`);

    core.clock.advance(60_000);
    await departed(core, {}, 'dep-alice-2');
    const unknown = await core.process(
      delivery(reinstated('alice@contoso.com', { departureEvent: 'no-such-departure' })),
    );
    expect(unknown.record.outcome).toBe('succeeded');
    expect(unknown.record.notes.join(' ')).toMatch(
      /no-such-departure named by this reinstatement is not among this user's departures/,
    );
  });

  it('dry run evaluates and writes nothing', async () => {
    const core = makeCore();
    await departed(core);
    const dry = makeCore({ dryRun: true });
    // The same audit history, a dry-run service.
    for (const record of core.audit.all()) dry.audit.force(record);
    dry.directory.user('alice@contoso.com').accountEnabled = false;

    const result = await dry.process(delivery(reinstated('alice@contoso.com')));

    expect(result.record.outcome).toBe('dry-run');
    expect(statuses(result.record)).toEqual({ enableAccount: 'would-run' });
    expect(dry.directory.writes()).toEqual([]);
  });
});

describe('what is refused', () => {
  it('an account this app did not disable: NotDisabledByThisApp, permanent, nothing written, also when a queue message claims force', async () => {
    const core = makeCore();
    core.users.bob.accountEnabled = false; // disabled by someone else

    const outcome = await core.handle('employeeLeaving', message(reinstated('bob@contoso.com')));
    const record = outcome.result.record;

    expect(outcome.settlement).toBe('abandon');
    expect(outcome.result.disposition).toBe('reject');
    expect(record.outcome).toBe('failed');
    expect(record.errorCode).toBe(ErrorCodes.NotDisabledByThisApp);
    expect(record.retryable).toBe(false);
    expect(record.errorMessage).toMatch(
      /no departure by this app that disabled UPN bob@contoso.com/,
    );
    expect(record.errorMessage).toMatch(/offboard reinstate --force/);
    expect(statuses(record)).toEqual({ enableAccount: 'not-attempted' });
    expect(core.directory.writes()).toEqual([]);

    // Force is a property of a run by hand only: a delivery from the queue cannot carry it.
    const forcedFromQueue = await core.process({
      ...delivery(reinstated('bob@contoso.com')),
      force: OPERATOR,
    });
    expect(forcedFromQueue.record.errorCode).toBe(ErrorCodes.NotDisabledByThisApp);
    expect(core.users.bob.accountEnabled).toBe(false);
  });

  it('a departure that did not disable (revoke only, or dry run) does not count', async () => {
    const core = makeCore();
    await core.process(delivery(leaving('alice@contoso.com', { disableAccount: false })));
    const result = await core.process(delivery(reinstated('alice@contoso.com')));
    expect(result.record.errorCode).toBe(ErrorCodes.NotDisabledByThisApp);

    const dry = makeCore({ dryRun: true });
    await dry.process(delivery(leaving('alice@contoso.com')));
    const afterDry = await dry.process(delivery(reinstated('alice@contoso.com')));
    expect(afterDry.record.errorCode).toBe(ErrorCodes.NotDisabledByThisApp);
  });

  it('an account already re-enabled by an earlier reinstatement is not this app disabled any more', async () => {
    const core = makeCore();
    await departed(core);
    const first = await core.process(delivery(reinstated('alice@contoso.com')));
    expect(first.record.outcome).toBe('succeeded');
    core.clock.advance(60_000);
    core.users.alice.accountEnabled = false; // an admin disabled her by hand since

    const second = await core.process(delivery(reinstated('alice@contoso.com')));

    expect(second.record.errorCode).toBe(ErrorCodes.NotDisabledByThisApp);
    expect(second.record.errorMessage).toContain(
      `reinstatement ${first.record.eventId} re-enabled it`,
    );
    expect(core.users.alice.accountEnabled).toBe(false);

    // A new departure disables her again: then a reinstatement undoes that one.
    await departed(core, {}, 'dep-alice-again');
    const third = await core.process(delivery(reinstated('alice@contoso.com')));
    expect(third.record.outcome).toBe('succeeded');
    expect(third.record.notes.join(' ')).toContain('Undoes departure dep-alice-again');
  });

  it('--force (a run by hand) re-enables an account this app did not disable, and says so', async () => {
    const core = makeCore();
    core.users.bob.accountEnabled = false;

    const result = await core.process({
      ...delivery(reinstated('bob@contoso.com'), { route: 'command' }),
      force: OPERATOR,
    });

    expect(result.record.outcome).toBe('succeeded');
    expect(core.users.bob.accountEnabled).toBe(true);
    const notes = result.record.notes.join(' ');
    expect(notes).toMatch(
      /Forced by ops\.oncall \(--force\) at .*: rehire confirmed by HR\. the audit shows no departure/,
    );
    expect(notes).toMatch(/issue a Temporary Access Pass or a new password/);
  });

  it('a protected account is refused, even forced, and never written to', async () => {
    const core = makeCore();
    core.users.breakglass.accountEnabled = false;

    for (const force of [false, true]) {
      const result = await core.process({
        ...delivery(reinstated(PROTECTED_UPN), { route: 'command' }),
        ...(force ? { force: OPERATOR } : {}),
      });
      expect(result.record.outcome).toBe('refused');
      expect(result.record.errorCode).toBe(ErrorCodes.ProtectedAccount);
      expect(result.disposition).toBe('reject');
    }
    expect(core.directory.writes()).toEqual([]);
    expect(core.users.breakglass.accountEnabled).toBe(false);
  });

  it('a UPN that now names another object: the departure of the old one does not count for the new one', async () => {
    const core = makeCore();
    await departed(core);
    core.directory.removeUser('alice@contoso.com');
    const newcomer = core.directory.addUser({ userPrincipalName: 'alice@contoso.com' });
    newcomer.accountEnabled = false;

    const result = await core.process(delivery(reinstated('alice@contoso.com')));

    expect(result.record.errorCode).toBe(ErrorCodes.NotDisabledByThisApp);
    expect(core.directory.writes().filter((w) => w.target === newcomer.id)).toEqual([]);
  });

  it('a synced user is re-enabled in on-premises AD, not in the cloud', async () => {
    const core = makeCore();
    // A departure that disabled dave before his account was synchronised (seeded history).
    const departure = (await core.process(delivery(leaving('dave.synced@contoso.com')))).record;
    core.audit.force({
      ...departure,
      outcome: 'succeeded',
      actions: [{ action: 'disableAccount', status: 'succeeded' }],
    });

    const result = await core.process(delivery(reinstated('dave.synced@contoso.com')));

    expect(result.record.outcome).toBe('failed');
    expect(result.record.errorCode).toBe(ErrorCodes.OnPremisesMastered);
    expect(result.record.errorMessage).toMatch(/re-enable the account in on-premises AD/);
    expect(core.directory.callsOf('enableAccount')).toEqual([]);
  });
});

describe('never racing a departure', () => {
  it('waits while a departure of the user is claimed by a run, then reinstates after it', async () => {
    const core = makeCore();
    const departure = await departed(core);
    // The departure is being run again right now by another delivery (a live claim).
    core.audit.force({
      ...departure,
      claimedBy: 'another-run',
      claimExpiresAt: core.clock.iso(120_000),
    });

    const outcome = await core.handle('employeeLeaving', message(reinstated('alice@contoso.com')));

    expect(outcome.settlement).toBe('complete');
    expect(outcome.result.error?.code).toBe(ErrorCodes.DepartureUnderway);
    expect(outcome.result.error?.message).toMatch(/is being carried out now \(claimed until/);
    expect(outcome.result.record.retryable).toBe(true);
    expect(core.directory.callsOf('enableAccount')).toEqual([]);
    // The retry waits at least until the claim has run out.
    const retry = core.scheduler.last();
    expect(retry.at.getTime()).toBeGreaterThanOrEqual(Date.parse(core.clock.iso(120_000)));

    // The departure's run ends; the reinstatement's copy then re-enables the account.
    core.audit.force({ ...departure });
    core.clock.set(retry.at);
    const later = await core.handle('employeeLeaving', core.scheduler.take(retry));
    expect(later.result.record.outcome).toBe('succeeded');
    expect(core.users.alice.accountEnabled).toBe(true);
  });

  it('supersedes a departure that failed and is due for a retry: its retry disables nothing', async () => {
    const core = makeCore();
    core.directory.failNext('disableAccount', graphErrors.unavailable);
    const first = await core.handle(
      'employeeLeaving',
      message(leaving('alice@contoso.com', {}, { id: 'dep-retrying' })),
    );
    expect(first.result.record).toMatchObject({ outcome: 'failed', retryable: true });
    const departureRetry = core.scheduler.last();

    const reinstatement = await core.handle(
      'employeeLeaving',
      message(reinstated('alice@contoso.com')),
    );
    // Nothing was disabled yet, so there is nothing to undo; the departure's retry is superseded.
    expect(reinstatement.result.record).toMatchObject({
      outcome: 'failed',
      errorCode: ErrorCodes.NotDisabledByThisApp,
    });
    expect(reinstatement.result.record.errorMessage).toContain(
      'Departure dep-retrying (failed, last attempt',
    );

    core.clock.set(departureRetry.at);
    const retry = await core.handle('employeeLeaving', core.scheduler.take(departureRetry));
    expect(retry.result.record.outcome).toBe('superseded');
    expect(retry.result.record.supersededBy?.eventId).toBe(reinstatement.result.record.eventId);
    expect(core.directory.callsOf('disableAccount')).toHaveLength(1);
    expect(core.users.alice.accountEnabled).toBe(true);
  });

  it('supersedes a departure still scheduled: on its date it writes nothing', async () => {
    const core = makeCore();
    await departed(core);
    const effectiveAt = core.clock.iso(7 * 86_400_000);
    await core.process(
      delivery(leaving('alice@contoso.com', { effectiveAt }, { id: 'dep-later' })),
    );
    const copy = core.scheduler.last();

    const result = await core.process(delivery(reinstated('alice@contoso.com')));

    expect(result.record.outcome).toBe('succeeded');
    expect(result.record.notes.join(' ')).toContain(
      `Departure dep-later scheduled for ${effectiveAt} is superseded by this reinstatement`,
    );
    const writes = core.directory.writes().length;
    core.clock.set(effectiveAt);
    const onTheDate = await core.handle('employeeLeaving', core.scheduler.take(copy));
    expect(onTheDate.result.record.outcome).toBe('superseded');
    expect(onTheDate.result.record.supersededBy?.eventId).toBe(result.record.eventId);
    expect(core.directory.writes()).toHaveLength(writes);
    expect(core.users.alice.accountEnabled).toBe(true);
  });

  it('with only a scheduled departure, nothing was disabled yet: refused, and the departure is superseded', async () => {
    const core = makeCore();
    await core.process(
      delivery(leaving('alice@contoso.com', { effectiveAt: core.clock.iso(86_400_000) })),
    );
    const result = await core.process(delivery(reinstated('alice@contoso.com')));
    expect(result.record.errorCode).toBe(ErrorCodes.NotDisabledByThisApp);
    expect(result.record.errorMessage).toMatch(/is superseded by this reinstatement/);
    expect(core.directory.writes()).toEqual([]);
  });
});

describe('the contract', () => {
  it('belongs on the employee-leaving queue only', async () => {
    const core = makeCore();
    const result = await core.process(
      delivery(reinstated('alice@contoso.com'), { route: 'mfaEnabled' }),
    );
    expect(result.record.errorCode).toBe(ErrorCodes.InvalidEvent);
    expect(result.record.errorMessage).toMatch(/does not belong on this queue/);
  });

  it('accepts user, reason, ticket and departureEvent only', async () => {
    const core = makeCore();
    const event = reinstated('alice@contoso.com');
    const result = await core.process(
      delivery({ ...event, data: { ...event.data, disableAccount: false } }),
    );
    expect(result.record.errorCode).toBe(ErrorCodes.InvalidEvent);
    expect(result.record.errorMessage).toMatch(/disableAccount/);
    expect(core.directory.calls).toEqual([]);
  });
});
