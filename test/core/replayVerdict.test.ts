/**
 * What `offboard dlq` says the app will decide about a dead-lettered message, checked against what
 * the app then decides when the message comes back (a replay is a new message id).
 */
import { ErrorCodes } from '../../shared/core/errors';
import { EventKinds, parseEvent } from '../../shared/core/events';
import {
  describeVerdict,
  replayVerdict,
  replayVerdictOf,
  type ReplayVerdict,
} from '../../shared/core/replayVerdict';
import type { RouteName } from '../../shared/core/routes';
import { graphErrors } from '../support/fakes';
import {
  PROTECTED_ID,
  PROTECTED_UPN,
  SOURCE,
  delivery,
  leaving,
  leavingCancelled,
  makeCore,
  mfaEnabled,
  reinstatedEvent,
  type Core,
} from './harness';

const POLICY = {
  protectedUsers: new Set([PROTECTED_UPN.toLowerCase(), PROTECTED_ID]),
  dryRun: false,
};

function verdictOf(core: Core, body: unknown, route: RouteName = 'employeeLeaving') {
  return replayVerdictOf(
    { audit: core.audit, timelines: core.timelines, policy: POLICY },
    { body, route },
    core.clock.now(),
  );
}

/** The replayed copy, as the function runs it. */
function replay(core: Core, body: unknown, route: RouteName = 'employeeLeaving') {
  return core.process(delivery(body, { route, messageId: `replay-${Math.random()}` }));
}

/** A departure that failed permanently before any write: Graph refused the user read (403). */
async function failedBeforeAnyWrite(core: Core, body: unknown) {
  core.directory.failNext('getUser', () => graphErrors.forbidden());
  const first = await core.process(delivery(body));
  expect(first.record).toMatchObject({ outcome: 'failed', errorCode: ErrorCodes.Forbidden });
  expect(first.disposition).toBe('reject');
}

describe('a departure dead-lettered before any write, then cancelled by HR', () => {
  it('given by object id: superseded by that cancellation, and the replay writes nothing', async () => {
    const core = makeCore();
    const { alice } = core.users;
    const departure = leaving(alice.id);
    await failedBeforeAnyWrite(core, departure);
    const cancellation = leavingCancelled(alice.id);
    expect((await core.process(delivery(cancellation))).record.outcome).toBe('succeeded');

    const verdict = await verdictOf(core, departure);
    expect(verdict).toEqual({
      kind: 'superseded',
      by: { kind: 'cancel', source: SOURCE, eventId: cancellation.id, at: cancellation.time },
    });
    expect(describeVerdict(verdict)).toBe(
      `superseded by a cancellation (${SOURCE}, ${cancellation.id}) at ${cancellation.time}`,
    );

    const writesBefore = core.directory.writes().length;
    const replayed = await replay(core, departure);
    expect(replayed.record.outcome).toBe('superseded');
    expect(replayed.record.supersededBy).toEqual(verdict.kind === 'superseded' && verdict.by);
    expect(core.directory.writes()).toHaveLength(writesBefore);
    // Once audited superseded, a further copy is a duplicate.
    expect(await verdictOf(core, departure)).toEqual({ kind: 'duplicate', outcome: 'superseded' });
  });

  it('given by UPN and never resolved: not guessed, the timeline is checked when it runs', async () => {
    const core = makeCore();
    const departure = leaving('bob@contoso.com');
    await failedBeforeAnyWrite(core, departure);
    await core.process(delivery(leavingCancelled('bob@contoso.com')));

    const verdict = await verdictOf(core, departure);
    expect(verdict).toEqual({ kind: 'unresolved' });
    expect(describeVerdict(verdict)).toBe('not yet resolved: the timeline is checked when it runs');
    expect((await replay(core, departure)).record.outcome).toBe('superseded');
  });

  it('without a `time`: placed where the app first saw it, so a later cancellation still supersedes it', async () => {
    const core = makeCore();
    const { alice } = core.users;
    const departure: Record<string, unknown> = leaving(alice.id);
    delete departure.time;
    await failedBeforeAnyWrite(core, departure);
    core.clock.advance(60_000);
    const cancellation = leavingCancelled(alice.id, { time: core.clock.iso() });
    await core.process(delivery(cancellation));
    core.clock.advance(60_000); // placed at "now", it would come after the cancellation

    expect(await verdictOf(core, departure)).toMatchObject({
      kind: 'superseded',
      by: { eventId: cancellation.id },
    });
    expect((await replay(core, departure)).record.outcome).toBe('superseded');
  });

  it('an earlier cancellation does not supersede it: it runs', async () => {
    const core = makeCore();
    const { alice } = core.users;
    await core.process(delivery(leavingCancelled(alice.id)));
    const departure = leaving(alice.id);
    await failedBeforeAnyWrite(core, departure);

    expect(await verdictOf(core, departure)).toEqual({ kind: 'runs' });
    const replayed = await replay(core, departure);
    expect(replayed.record.outcome).toBe('succeeded');
    expect(await verdictOf(core, departure)).toEqual({ kind: 'duplicate', outcome: 'succeeded' });
    expect(describeVerdict({ kind: 'duplicate', outcome: 'succeeded' })).toBe(
      'already succeeded: a duplicate, nothing is done again',
    );
  });
});

it('a departure given by UPN that an earlier attempt resolved reads that person’s timeline', async () => {
  const core = makeCore();
  const { bob } = core.users;
  const departure = leaving(bob.userPrincipalName);
  core.directory.failNext('disableAccount', () => graphErrors.forbidden());
  const first = await core.process(delivery(departure));
  expect(first.record).toMatchObject({ outcome: 'failed', objectId: bob.id });
  const reinstatement = reinstatedEvent(bob.id, { reason: 'stays' });
  await core.process(delivery(reinstatement));

  expect(await verdictOf(core, departure)).toMatchObject({
    kind: 'superseded',
    by: { kind: 'reinstate', eventId: reinstatement.id },
  });
  expect((await replay(core, departure)).record.outcome).toBe('superseded');
});

describe('refused and invalid messages keep their verdict', () => {
  it('a protected account named by the event: will be refused', async () => {
    const core = makeCore();
    const departure = leaving(PROTECTED_UPN);
    const verdict = await verdictOf(core, departure);
    expect(verdict).toEqual({ kind: 'protected' });
    expect(describeVerdict(verdict)).toBe('protected account: will be refused');
    expect((await replay(core, departure)).record.outcome).toBe('refused');
  });

  it('a protected account known only from an earlier attempt (its object id): will be refused', async () => {
    const core = makeCore();
    const departure = leaving('vault.admin@contoso.com');
    expect((await core.process(delivery(departure))).record.outcome).toBe('refused');
    expect(await verdictOf(core, departure)).toEqual({ kind: 'protected' });
  });

  it('an invalid message: the reason the app records', async () => {
    const core = makeCore();
    const body = leaving('bad/user@contoso.com');
    const verdict = await verdictOf(core, body);
    const replayed = await replay(core, body);
    expect(replayed.record.errorCode).toBe(ErrorCodes.InvalidEvent);
    expect(verdict).toEqual({ kind: 'invalid', reason: replayed.record.errorMessage });
    expect(describeVerdict(verdict)).toBe(`invalid: ${replayed.record.errorMessage ?? ''}`);
  });

  it('an event the queue does not take is invalid there', async () => {
    const core = makeCore();
    expect(await verdictOf(core, mfaEnabled('alice@contoso.com'))).toMatchObject({
      kind: 'invalid',
    });
  });
});

it('an MFA event by UPN runs: it is no HR intent, no timeline decides it', async () => {
  const core = makeCore();
  const body = mfaEnabled('alice@contoso.com');
  expect(await verdictOf(core, body, 'mfaEnabled')).toEqual({ kind: 'runs' });
  expect((await replay(core, body, 'mfaEnabled')).record.outcome).toBe('succeeded');
});

it('a store that cannot be read gives no verdict rather than a guess', async () => {
  const core = makeCore();
  const { alice } = core.users;
  const departure = leaving(alice.id);
  core.timelines.failNext = 1;
  const verdict: ReplayVerdict = await verdictOf(core, departure);
  expect(verdict.kind).toBe('unknown');
  expect(describeVerdict(verdict)).toMatch(/^unknown \(.+\): decided when it runs$/);
});

it('the pure rule, in the claim’s order: a record a run holds now is busy, one the guardrail holds waits', async () => {
  const core = makeCore();
  const body = leaving(core.users.alice.id);
  await failedBeforeAnyWrite(core, body);
  const [record] = await core.audit.findByEventId(body.id);
  if (record === undefined) throw new Error('no record');
  const event = parseEvent(body, EventKinds);
  const now = core.clock.now();
  const base = { parsed: { event }, policy: POLICY, timeline: undefined, now };
  const claimed = { claimedBy: 'another-run', claimExpiresAt: core.clock.iso(60_000) };
  expect(
    replayVerdict({ ...base, record: { ...record, outcome: 'in-progress', ...claimed } }),
  ).toEqual({ kind: 'busy' });
  expect(replayVerdict({ ...base, record: { ...record, outcome: 'held' } })).toEqual({
    kind: 'held',
  });
  expect(replayVerdict({ ...base, record })).toEqual({ kind: 'runs' });
});
