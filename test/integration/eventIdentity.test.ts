import { BREAKGLASS_UPN } from '../../dev/graph-standin/index';
import { latestRecordFor } from '../../shared/core/auditRecords';
import { createQueueHandler, SettlementError } from '../../shared/adapters/functionHandler';
import { MessageProperties } from '../../shared/core/messaging';
import type { AuditRecord } from '../../shared/core/ports';
import type { RouteName } from '../../shared/core/routes';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

/**
 * "The audit is the truth" (issue 7): each case here made the audit say "done" for something that
 * did not happen, or hid something that did, on the code before event identity, conditional
 * writes and claims.
 */
let world: World;
let pipeline: Pipeline | undefined;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await pipeline?.stop();
  await world.stop();
});
beforeEach(() => {
  world.graph.reset();
});

async function deliver(
  route: RouteName,
  body: unknown,
  messageId: string,
  applicationProperties: Record<string, unknown> = {},
): Promise<SettlementError | undefined> {
  try {
    await createQueueHandler(() => world.runtime, route)(
      body,
      world.context({ messageId, applicationProperties }),
    );
    return undefined;
  } catch (error) {
    if (error instanceof SettlementError) return error;
    throw error;
  }
}

const writesFor = (userId: string) =>
  world.graph
    .writes()
    .filter((r) => r.userId === userId)
    .map((r) => r.operation)
    .sort();
const records = (eventId: string) => world.runtime.audit.findByEventId(eventId);
const recordOfUser = async (eventId: string, userId: string): Promise<AuditRecord | undefined> =>
  (await records(eventId)).find((r) => r.objectId === userId);

describe('event identity: source + id within a route, plus what the event asks for', () => {
  it('an mfa.enabled event cannot swallow a departure that reuses its id', async () => {
    const alice = world.newUser();
    const bob = world.newUser();
    expect(
      await deliver('mfaEnabled', cloudEvent('mfa.enabled', { user: alice.upn }, 'HR-2001'), 'm1'),
    ).toBeUndefined();
    expect(
      await deliver(
        'employeeLeaving',
        cloudEvent('employee.leaving', { user: bob.upn }, 'HR-2001'),
        'm2',
      ),
    ).toBeUndefined();
    // Before: "duplicate", exit 0, bob still enabled with live sessions.
    expect(writesFor(bob.id)).toEqual(['patch', 'revoke']);
    expect(await recordOfUser('HR-2001', bob.id)).toMatchObject({
      outcome: 'succeeded',
      duplicates: 0,
    });
    expect(await records('HR-2001')).toHaveLength(2);
  });

  it('an id reused for another user never inherits the first user’s progress, and the first still finishes', async () => {
    const ann = world.newUser();
    const ben = world.newUser();
    world.graph.injectFault({ operation: 'revoke', status: 500, userKey: ann.id });
    const forAnn = cloudEvent('employee.leaving', { user: ann.upn, resetPassword: true }, 'X');
    await deliver('employeeLeaving', forAnn, 'ann-1');
    expect(await recordOfUser('X', ann.id)).toMatchObject({ outcome: 'failed', retryable: true });

    await deliver(
      'employeeLeaving',
      cloudEvent('employee.leaving', { user: ben.upn, resetPassword: true }, 'X'),
      'ben-1',
    );
    // Before: ben's record said disabled and reset (copied from ann's), and Graph saw nothing.
    expect(writesFor(ben.id)).toEqual(['patch', 'patch', 'revoke']);
    const benRecord = await recordOfUser('X', ben.id);
    expect(benRecord).toMatchObject({ outcome: 'succeeded', idReused: true });
    expect(benRecord?.actions.some((a) => a.message === 'Done in an earlier attempt.')).toBe(false);

    // Ann's retry is not dropped as a duplicate: her sessions are revoked, her password not reset twice.
    await deliver('employeeLeaving', forAnn, 'ann-retry');
    expect(writesFor(ann.id)).toEqual(['patch', 'patch', 'revoke', 'revoke']);
    expect(await recordOfUser('X', ann.id)).toMatchObject({ outcome: 'succeeded', attempts: 2 });
  });

  it('the same event resent (new message id, new time) is a duplicate, with no second write', async () => {
    const carl = world.newUser();
    const event = cloudEvent('employee.leaving', { user: carl.upn, resetPassword: true });
    await deliver('employeeLeaving', event, 'first');
    await deliver('employeeLeaving', { ...event, time: new Date().toISOString() }, 'resent');
    expect(writesFor(carl.id)).toEqual(['patch', 'patch', 'revoke']);
    expect(await latestRecordFor(world.runtime.audit, event.id as string)).toMatchObject({
      outcome: 'succeeded',
      attempts: 1,
      duplicates: 1,
    });
  });
});

describe('invalid messages keep to records of their own', () => {
  it('an invalid message reusing a scheduled departure’s id leaves it scheduled, and the cancellation still cancels it', async () => {
    const dana = world.newUser();
    const effectiveAt = new Date(Date.now() + 86_400_000).toISOString();
    const departure = cloudEvent('employee.leaving', { user: dana.upn, effectiveAt }, 'D-1');
    await deliver('employeeLeaving', departure, 'd-1');
    const bogus = cloudEvent('employee.leaving', { user: 'not a user' }, 'D-1');
    expect(await deliver('employeeLeaving', bogus, 'd-bogus')).toMatchObject({
      code: 'InvalidEvent',
    });
    // Before: the scheduled record was replaced by the invalid one.
    expect(await recordOfUser('D-1', dana.id)).toMatchObject({ outcome: 'scheduled' });

    const cancel = cloudEvent('employee.leaving.cancelled', { user: dana.upn });
    expect(await deliver('employeeLeaving', cancel, 'd-cancel')).toBeUndefined();
    expect(await recordOfUser('D-1', dana.id)).toMatchObject({ outcome: 'cancelled' });
    expect(writesFor(dana.id)).toEqual([]);
  });

  it('an invalid message reusing a refused event’s id does not erase the refusal', async () => {
    const refused = cloudEvent('employee.leaving', { user: BREAKGLASS_UPN }, 'R-1');
    expect(await deliver('employeeLeaving', refused, 'r-1')).toMatchObject({
      code: 'ProtectedAccount',
    });
    await deliver('employeeLeaving', { ...refused, data: { user: 42 } }, 'r-bogus');
    const all = await records('R-1');
    expect(all.map((r) => r.outcome).sort()).toEqual(['failed', 'refused']);
    expect(all.find((r) => r.outcome === 'refused')?.errorCode).toBe('ProtectedAccount');
  });
});

describe('message properties are hints; the audit decides', () => {
  it('a forged leave-date property does not make a departure 30 days ahead run now', async () => {
    const erin = world.newUser();
    const effectiveAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const event = cloudEvent('employee.leaving', { user: erin.upn, effectiveAt });
    await deliver('employeeLeaving', event, 'forged-date', {
      [MessageProperties.scheduledFor]: effectiveAt,
    });
    expect(writesFor(erin.id)).toEqual([]);
    expect(await latestRecordFor(world.runtime.audit, event.id as string)).toMatchObject({
      outcome: 'scheduled',
    });
  });

  it('a forged attempt counter does not send a fresh event straight to RetriesExhausted', async () => {
    const fay = world.newUser();
    world.graph.injectFault({ operation: 'revoke', status: 503, userKey: fay.id });
    const event = cloudEvent('mfa.enabled', { user: fay.upn });
    expect(
      await deliver('mfaEnabled', event, 'forged-attempt', {
        [MessageProperties.attempt]: 999,
      }),
    ).toBeUndefined(); // a retry is parked, not a dead letter
    expect(await latestRecordFor(world.runtime.audit, event.id as string)).toMatchObject({
      outcome: 'failed',
      retryable: true,
      attempts: 1,
      errorCode: 'GraphUnavailable',
    });
  });

  it('a body nested too deep on the leave-date path is an invalid event, not a messaging failure', async () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 3000; i++) deep = [deep];
    const event = cloudEvent('employee.leaving', {
      user: world.newUser().upn,
      effectiveAt: new Date(Date.now() + 86_400_000).toISOString(),
    });
    const failure = await deliver('employeeLeaving', JSON.stringify({ ...event, deep }), 'deep');
    expect(failure).toMatchObject({ code: 'InvalidEvent', retryable: false });
  });
});

describe('exactly one run acts at a time', () => {
  it('20 concurrent deliveries of one event make one set of Graph writes and one record that counts all 20', async () => {
    const gus = world.newUser();
    const event = cloudEvent('employee.leaving', { user: gus.upn, resetPassword: true });
    // Slow Graph down so that every delivery arrives while the first is still running.
    world.graph.injectFault({
      kind: 'delay',
      operation: 'any',
      ms: 300,
      userKey: gus.id,
      times: 3,
    });
    const failures = await Promise.all(
      Array.from({ length: 20 }, (_, i) => deliver('employeeLeaving', event, `race-${i}`)),
    );
    expect(failures.filter((f) => f !== undefined)).toEqual([]);
    expect(writesFor(gus.id)).toEqual(['patch', 'patch', 'revoke']);

    // The others were parked to come back (not counted as failures or duplicates yet); run them.
    pipeline = startPipeline(world);
    const record = await waitFor(
      'every delivery to be accounted for',
      async () => {
        const r = await latestRecordFor(world.runtime.audit, event.id as string);
        return r !== undefined && r.attempts + r.duplicates === 20 ? r : undefined;
      },
      60_000,
    );
    expect(record).toMatchObject({ outcome: 'succeeded', attempts: 1, duplicates: 19 });
    expect(writesFor(gus.id)).toEqual(['patch', 'patch', 'revoke']);
    expect(await records(event.id as string)).toHaveLength(1);
    await pipeline.stop();
    pipeline = undefined;
  }, 90_000);

  it('a cancellation that loses the race to the leave-date run says DepartureAlreadyExecuted', async () => {
    const hal = world.newUser();
    pipeline = startPipeline(world);
    // The leave-date run holds the claim while Graph is slow to disable the account.
    world.graph.injectFault({ kind: 'delay', operation: 'patch', ms: 1500, userKey: hal.id });
    const effectiveAt = new Date(Date.now() + 7_000).toISOString();
    const departure = cloudEvent('employee.leaving', { user: hal.upn, effectiveAt });
    await pipeline.send('employee-leaving', departure);
    await waitFor('the leave-date run to reach Graph', () =>
      world.graph.requests.some((r) => r.operation === 'patch' && r.userId === hal.id),
    );
    const cancel = cloudEvent('employee.leaving.cancelled', { user: hal.upn });
    await pipeline.send('employee-leaving', cancel);

    const cancelRecord = await waitFor('the cancellation to be recorded', async () => {
      const r = await latestRecordFor(world.runtime.audit, cancel.id as string);
      return r?.outcome === 'failed' ? r : undefined;
    });
    expect(cancelRecord.errorCode).toBe('DepartureAlreadyExecuted');
    const departureRecord = await waitFor('the departure to finish', async () => {
      const r = await latestRecordFor(world.runtime.audit, departure.id as string);
      return r?.outcome === 'succeeded' ? r : undefined;
    });
    // Before: the audit said "cancelled" for an account that was disabled.
    expect(departureRecord.outcome).toBe('succeeded');
    expect(writesFor(hal.id)).toEqual(['patch', 'revoke']);
    await pipeline.stop();
    pipeline = undefined;
  }, 60_000);

  it('a cancellation that wins the race leaves the leave-date copy nothing to do', async () => {
    const ivy = world.newUser();
    const effectiveAt = new Date(Date.now() + 86_400_000).toISOString();
    const departure = cloudEvent('employee.leaving', { user: ivy.upn, effectiveAt });
    await deliver('employeeLeaving', departure, 'ivy-1');
    await deliver(
      'employeeLeaving',
      cloudEvent('employee.leaving.cancelled', { user: ivy.upn }),
      'ivy-c',
    );
    // The copy for the date arrives anyway (enqueued before the cancellation removed it).
    await deliver('employeeLeaving', departure, 'ivy-copy', {
      [MessageProperties.scheduledFor]: effectiveAt,
    });
    expect(writesFor(ivy.id)).toEqual([]);
    expect(await latestRecordFor(world.runtime.audit, departure.id as string)).toMatchObject({
      outcome: 'cancelled',
    });
  });
});
