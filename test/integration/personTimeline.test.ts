/**
 * One person, one timeline, end to end: each reproduction of a departure told over days (leave,
 * cancel, reinstate, dead-letter, replay, throttling, an admin's own changes) through the function
 * handlers on the local runner (Service Bus stand-in), the real Graph client against the Graph
 * stand-in, the audit and the timelines in Azurite, the outcome topic read back with the real SDK,
 * and the `offboard` CLI as a child process where an operator is involved.
 */
import { latestRecordFor } from '../../shared/core/auditRecords';
import type { AuditRecord } from '../../shared/core/ports';
import { runCli } from '../support/cli';
import { listenToOutcomes, type OutcomeListener } from '../support/outcomes';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

jest.setTimeout(120_000);

/** Attempts of an MFA event for transient failures (kept small so that reproduction 4 is quick). */
const MFA_MAX_ATTEMPTS = 2;
const QUEUE = 'employee-leaving';
/** How long a step may take on a loaded 2-core machine (each waits only as long as it needs). */
const WAIT_MS = 60_000;

let world: World;
let pipeline: Pipeline;
let cliEnv: Record<string, string>;
let outcomes: OutcomeListener;

beforeAll(async () => {
  world = await startWorld({ RETRY_MAX_ATTEMPTS: String(MFA_MAX_ATTEMPTS) });
  pipeline = startPipeline(world);
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-test' };
  outcomes = listenToOutcomes(world);
});
afterAll(async () => {
  await outcomes.close();
  await pipeline.stop();
  await world.stop();
});

type Event = Record<string, unknown> & { id: string };
const hrEvent = (type: string, data: Record<string, unknown>, time?: string): Event => {
  const event = cloudEvent(type, data) as Event;
  return time === undefined ? event : { ...event, time };
};

const record = (id: string) => latestRecordFor(world.runtime.audit, id);
/** The event's record once it has this outcome and no run holds it. */
const settled = (id: string, wanted: AuditRecord['outcome'], timeoutMs = WAIT_MS) =>
  waitFor(
    `${id} to be ${wanted}`,
    async () => {
      const r = await record(id);
      return r?.outcome === wanted && r.claimedBy === undefined ? r : undefined;
    },
    timeoutMs,
  );
/** The event's record once its run is over, whatever its outcome (no run holds it, no retry is parked). */
const ended = (id: string) =>
  waitFor(
    `${id} to end`,
    async () => {
      const r = await record(id);
      return r !== undefined &&
        r.claimedBy === undefined &&
        r.nextAttemptAt === undefined &&
        r.outcome !== 'in-progress'
        ? r
        : undefined;
    },
    WAIT_MS,
  );
const deadLettered = (id: string) =>
  world.serviceBus.deadLetters(QUEUE).find((d) => (d.body as { id?: string }).id === id);
/** Writes the Graph stand-in saw to this person's account, so far. */
const writesTo = (objectId: string) =>
  world.graph.writes().filter((w) => w.userId?.toLowerCase() === objectId.toLowerCase());
const enabled = (objectId: string) => world.graph.getUser(objectId)?.accountEnabled;
/** An admin's own change in the directory (the portal, PowerShell): no trace this app can read. */
function adminSets(user: { id: string; upn: string }, accountEnabled: boolean): void {
  world.graph.addUser({ id: user.id, userPrincipalName: user.upn, accountEnabled });
}

/** Graph refuses this operation on this user with 403 (a missing permission) until removed. */
const denied = (operation: 'getUser' | 'revoke', user: string) =>
  world.graph.injectFault({
    operation,
    userKey: user,
    status: 403,
    code: 'Authorization_RequestDenied',
    message: 'Insufficient privileges to complete the operation.',
    times: Infinity,
  });

/** A departure sent through the queue that fails permanently and lands in the dead-letter queue. */
async function deadLetteredDeparture(departure: Event): Promise<AuditRecord> {
  await pipeline.send(QUEUE, departure);
  await waitFor(
    `departure ${departure.id} to be dead-lettered`,
    () => deadLettered(departure.id),
    WAIT_MS,
  );
  return settled(departure.id, 'failed');
}

/**
 * Brings a dead-lettered departure back both ways an operator can: `offboard dlq replay` and then
 * `offboard process` (a run by hand). Whether replay sends a copy of a superseded message or skips
 * it, the departure then has been brought back at least once; returns its record once settled.
 */
async function replayAndRunByHand(departure: Event): Promise<AuditRecord> {
  const replay = await runCli(
    ['dlq', 'replay', '--queue', QUEUE, '--event', departure.id, '--rate', '0'],
    cliEnv,
  );
  expect(replay.stderr).toBe('');
  expect(replay.code).toBe(0);
  if (deadLettered(departure.id) === undefined) {
    // Replayed: wait for the copy to be run by the function before running it by hand.
    await waitFor(
      `the replayed copy of ${departure.id} to run`,
      async () => {
        const r = await record(departure.id);
        return r !== undefined && r.outcome !== 'failed' && r.claimedBy === undefined;
      },
      WAIT_MS,
    );
  }
  const byHand = await runCli(['process', '--json'], cliEnv, JSON.stringify(departure));
  expect(byHand.stderr).toBe('');
  expect(byHand.code).toBe(0);
  const done = await record(departure.id);
  if (done === undefined) throw new Error(`no record for ${departure.id}`);
  // The run by hand reports the record as it stands (a duplicate of a finished event, or its end).
  expect((JSON.parse(byHand.stdout) as AuditRecord).outcome).toBe(done.outcome);
  return done;
}

describe('1. a replay after a cancellation', () => {
  it('writes nothing: the departure ends superseded by the cancellation and the account stays enabled', async () => {
    const kept = world.newUser();
    const readDenied = denied('getUser', kept.upn);
    const departure = hrEvent('employee.leaving', { user: kept.upn });
    const failed = await deadLetteredDeparture(departure);
    expect(failed.retryable).toBe(false);
    expect(writesTo(kept.id)).toHaveLength(0);
    readDenied.remove(); // the permission is fixed

    const cancel = hrEvent('employee.leaving.cancelled', { user: kept.upn, reason: 'stays' });
    await pipeline.send(QUEUE, cancel);
    await settled(cancel.id, 'succeeded');

    const done = await replayAndRunByHand(departure);

    expect(done.outcome).toBe('superseded');
    expect(done.supersededBy).toEqual({
      eventId: cancel.id,
      source: cancel.source,
      kind: 'cancel',
      at: new Date(cancel.time as string).toISOString(),
    });
    expect(done.notes.join(' ')).toContain(
      `Superseded by a cancellation of the same person, event ${cancel.id}`,
    );
    expect(done.actions.every((a) => a.status === 'not-attempted')).toBe(true);
    expect(writesTo(kept.id)).toHaveLength(0);
    expect(enabled(kept.id)).toBe(true);
    const event = await outcomes.announced(departure.id, 'superseded');
    expect(event.data.supersededBy).toMatchObject({ id: cancel.id, kind: 'cancel' });
    expect(outcomes.about(departure.id).map((o) => o.outcome)).not.toContain('succeeded');
  });
});

describe('2. a replay after a reinstatement, of a departure that had disabled the account', () => {
  /** A departure that disabled the account, then failed on the revocation (403), dead-lettered. */
  async function disabledThenDeadLettered(user: { id: string; upn: string }) {
    const revokeDenied = denied('revoke', user.id);
    const departure = hrEvent('employee.leaving', { user: user.upn });
    const failed = await deadLetteredDeparture(departure);
    expect(failed.actions).toContainEqual(
      expect.objectContaining({ action: 'disableAccount', status: 'succeeded' }),
    );
    expect(enabled(user.id)).toBe(false);
    revokeDenied.remove();
    return departure;
  }

  it('ends superseded, not "succeeded, disabled": the audit and the topic agree with the enabled account', async () => {
    const leaver = world.newUser();
    const departure = await disabledThenDeadLettered(leaver);

    const reinstatement = hrEvent('employee.reinstated', { user: leaver.upn, reason: 'rehired' });
    await pipeline.send(QUEUE, reinstatement);
    await settled(reinstatement.id, 'succeeded');
    expect(enabled(leaver.id)).toBe(true);
    const writesBefore = writesTo(leaver.id).length;

    const done = await replayAndRunByHand(departure);

    expect(done.outcome).toBe('superseded');
    expect(done.supersededBy).toMatchObject({ eventId: reinstatement.id, kind: 'reinstate' });
    // What the earlier attempt did stays on the record, said as what it was.
    expect(done.actions).toContainEqual(
      expect.objectContaining({
        action: 'disableAccount',
        status: 'succeeded',
        message: 'Done in an earlier attempt, before this event was superseded.',
      }),
    );
    expect(writesTo(leaver.id)).toHaveLength(writesBefore);
    expect(enabled(leaver.id)).toBe(true);
    const event = await outcomes.announced(departure.id, 'superseded');
    expect(event.data.supersededBy).toMatchObject({ id: reinstatement.id, kind: 'reinstate' });
    expect(outcomes.about(departure.id).map((o) => o.outcome)).not.toContain('succeeded');
  });

  it('without a reinstatement, checks the account instead of remembering: re-enabled by someone, it is disabled again and the record says so', async () => {
    const leaver = world.newUser();
    const departure = await disabledThenDeadLettered(leaver);
    adminSets(leaver, true); // someone re-enabled it; HR still says the person leaves

    const done = await replayAndRunByHand(departure);

    expect(done.outcome).toBe('succeeded');
    expect(done.notes.join(' ')).toContain(
      'An earlier attempt of this event made disableAccount, but the account as read now does not show it: it is done again.',
    );
    expect(
      writesTo(leaver.id)
        .filter((w) => w.method === 'PATCH')
        .at(-1)?.body,
    ).toEqual({
      accountEnabled: false,
    });
    expect(enabled(leaver.id)).toBe(false);
    expect((await outcomes.announced(departure.id, 'succeeded')).data.actions).toContainEqual(
      expect.objectContaining({ action: 'disableAccount', status: 'succeeded' }),
    );
  });
});

describe('3. a cancellation that arrives before its departure', () => {
  it('supersedes the departure when it arrives later: no write, the account stays enabled', async () => {
    const person = world.newUser();
    const leftAt = new Date(Date.now() - 60_000).toISOString();
    const departure = hrEvent('employee.leaving', { user: person.upn }, leftAt);
    const cancel = hrEvent('employee.leaving.cancelled', { user: person.upn });

    await pipeline.send(QUEUE, cancel);
    const cancellation = await settled(cancel.id, 'succeeded');
    await pipeline.send(QUEUE, departure);
    const done = await ended(departure.id);

    expect(done.outcome).toBe('superseded');
    expect(done.supersededBy).toMatchObject({ eventId: cancel.id, kind: 'cancel' });
    expect(cancellation.notes.join(' ')).toMatch(/superseded by this cancellation/);
    expect(writesTo(person.id)).toHaveLength(0);
    expect(enabled(person.id)).toBe(true);
    expect((await outcomes.announced(departure.id, 'superseded')).data.supersededBy?.id).toBe(
      cancel.id,
    );
  });

  it('at equal times the cancellation comes after the departure (it can only be about one)', async () => {
    const person = world.newUser();
    const at = new Date(Date.now() - 1_000).toISOString();
    const departure = hrEvent('employee.leaving', { user: person.upn }, at);
    const cancel = hrEvent('employee.leaving.cancelled', { user: person.upn }, at);

    await pipeline.send(QUEUE, cancel);
    await settled(cancel.id, 'succeeded');
    await pipeline.send(QUEUE, departure);
    const done = await ended(departure.id);

    expect(done.outcome).toBe('superseded');
    expect(done.supersededBy).toMatchObject({ eventId: cancel.id, at });
    expect(writesTo(person.id)).toHaveLength(0);
    expect(enabled(person.id)).toBe(true);
  });
});

describe('4. Graph throttling every write', () => {
  it('never gives a departure up: it is announced delayed once overdue and completes when Graph recovers', async () => {
    const person = world.newUser();
    const throttled = (['patch', 'revoke'] as const).map((operation) =>
      world.graph.injectFault({
        operation,
        userKey: person.id,
        status: 429,
        code: 'TooManyRequests',
        retryAfterSeconds: 1,
        times: Infinity,
      }),
    );
    // Due half an hour ago: past DEPARTURE_OVERDUE_MINUTES (default 15), well within
    // DEPARTURE_GIVE_UP_AFTER_MINUTES (default 24 hours).
    const effectiveAt = new Date(Date.now() - 30 * 60_000).toISOString();
    const departure = hrEvent('employee.leaving', { user: person.upn, effectiveAt });
    await pipeline.send(QUEUE, departure);

    // Twice the attempts an MFA event gets, every one of them answered 429.
    const delayed = await waitFor(
      'the throttled departure to outlast the attempt limit',
      async () => {
        const r = await record(departure.id);
        const enough = r !== undefined && r.attempts >= 2 * MFA_MAX_ATTEMPTS;
        const gaveUp = r?.errorCode === 'RetriesExhausted';
        return (enough || gaveUp) && r?.claimedBy === undefined ? r : undefined;
      },
      WAIT_MS,
    );
    expect(delayed.errorCode).not.toBe('RetriesExhausted');
    expect(delayed.outcome).toBe('delayed');
    expect(delayed.delayedAt).toBeDefined();
    expect(delayed.waits).toBe(delayed.attempts);
    expect(deadLettered(departure.id)).toBeUndefined();
    expect(enabled(person.id)).toBe(true);
    const announcedDelayed = await outcomes.announced(departure.id, 'delayed');
    expect(announcedDelayed.data.delayedSince).toBe(delayed.delayedAt);
    expect(writesTo(person.id).filter((w) => w.status >= 200 && w.status < 300)).toEqual([]);

    for (const fault of throttled) fault.remove(); // Graph recovers
    const done = await settled(departure.id, 'succeeded');
    expect(done.actions).toEqual([
      expect.objectContaining({ action: 'disableAccount', status: 'succeeded' }),
      expect.objectContaining({ action: 'revokeSignInSessions', status: 'succeeded' }),
    ]);
    expect(done.verification?.verified).toBe(true);
    // The final record still says it was late, and since when it was announced so.
    expect(done.delayedAt).toBe(delayed.delayedAt);
    expect(enabled(person.id)).toBe(false);
    expect(deadLettered(departure.id)).toBeUndefined();
    await outcomes.announced(departure.id, 'succeeded');
    // Announced delayed once, however many attempts were throttled after it became overdue.
    expect(outcomes.about(departure.id).filter((o) => o.outcome === 'delayed')).toHaveLength(1);
  });

  it('an MFA event still has an attempt limit for failures Graph gave no wait for', async () => {
    const person = world.newUser();
    world.graph.injectFault({
      operation: 'revoke',
      userKey: person.id,
      status: 503,
      code: 'serviceNotAvailable',
      times: Infinity,
    });
    const mfa = hrEvent('mfa.enabled', { user: person.upn });
    await pipeline.send('mfa-enabled', mfa);

    await waitFor(
      'the MFA event to be dead-lettered',
      () =>
        world.serviceBus
          .deadLetters('mfa-enabled')
          .find((d) => (d.body as { id?: string }).id === mfa.id),
      WAIT_MS,
    );
    const failed = await settled(mfa.id, 'failed');
    expect(failed.errorCode).toBe('RetriesExhausted');
    expect(failed.errorMessage).toMatch(new RegExp(`^Gave up after ${MFA_MAX_ATTEMPTS} attempts`));
    expect(failed.attempts).toBe(MFA_MAX_ATTEMPTS);
  });
});

describe('5. a reinstatement after an admin re-enabled and re-disabled the account', () => {
  /** A departure this app carried out: the account disabled by this app. */
  async function departed(user: { id: string; upn: string }): Promise<void> {
    const departure = hrEvent('employee.leaving', { user: user.upn });
    await pipeline.send(QUEUE, departure);
    await settled(departure.id, 'succeeded');
    expect(enabled(user.id)).toBe(false);
  }

  it('is refused (NotDisabledByThisApp) with no write when a run of this app read the account re-enabled', async () => {
    const person = world.newUser();
    await departed(person);
    adminSets(person, true);
    // A run of this app reads the account while it is enabled (here an MFA event of the person).
    const mfa = hrEvent('mfa.enabled', { user: person.upn });
    await pipeline.send('mfa-enabled', mfa);
    await settled(mfa.id, 'succeeded');
    adminSets(person, false); // ...and the admin disables it again, for reasons of their own
    const writesBefore = writesTo(person.id).length;

    const reinstatement = hrEvent('employee.reinstated', { user: person.upn, reason: 'rehired' });
    await pipeline.send(QUEUE, reinstatement);
    const refused = await ended(reinstatement.id);

    expect(refused.outcome).toBe('failed');
    expect(refused.errorCode).toBe('NotDisabledByThisApp');
    expect(refused.retryable).toBe(false);
    expect(refused.errorMessage).toMatch(/someone else has changed it since/);
    expect(refused.errorMessage).toMatch(/offboard reinstate --force/);
    expect(writesTo(person.id)).toHaveLength(writesBefore);
    expect(enabled(person.id)).toBe(false);
    const event = await outcomes.announced(reinstatement.id, 'failed');
    expect(event.data.error?.code).toBe('NotDisabledByThisApp');
  });

  it('cannot know it when no run read the account in between, and says so on the record', async () => {
    // Re-enabled and disabled again by an admin with no run of this app in between: the account
    // looks exactly as this app left it, and nothing this app can read tells otherwise. The
    // reinstatement goes ahead, and the record says what could not be known.
    const person = world.newUser();
    await departed(person);
    adminSets(person, true);
    adminSets(person, false);

    const reinstatement = hrEvent('employee.reinstated', { user: person.upn, reason: 'rehired' });
    await pipeline.send(QUEUE, reinstatement);
    const done = await settled(reinstatement.id, 'succeeded');

    expect(done.notes.join(' ')).toMatch(
      /What cannot be known: this app sees a change made by someone else only when one of its runs reads the account afterwards/,
    );
    expect(enabled(person.id)).toBe(true);
  });
});
