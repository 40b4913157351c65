import { ALICE_ID, ALICE_UPN, DOLLAR_UPN } from '../../dev/graph-standin/index';
import { latestRecordFor } from '../../shared/core/auditRecords';
import type { AuditRecord } from '../../shared/core/ports';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let pipeline: Pipeline;

/** A fresh user per test (see World.newUser). */
let bob: { id: string; upn: string };
beforeEach(() => {
  bob = world.newUser();
});

beforeAll(async () => {
  world = await startWorld();
  pipeline = startPipeline(world);
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
});

const record = (id: string) => latestRecordFor(world.runtime.audit, id);
const outcome = (id: string, wanted: AuditRecord['outcome']) =>
  waitFor(`${id} to be ${wanted}`, async () => {
    const r = await record(id);
    return r?.outcome === wanted ? r : undefined;
  });

describe('leave dates', () => {
  it('schedules a future departure, audits it as scheduled, and acts on the date', async () => {
    world.graph.reset();
    const effectiveAt = new Date(Date.now() + 65_000).toISOString();
    const event = cloudEvent('employee.leaving', {
      user: DOLLAR_UPN,
      effectiveAt,
      disableAccount: false,
    });
    const scheduledBefore = world.serviceBus.stats('employee-leaving').scheduled;
    await pipeline.send('employee-leaving', event);

    const scheduled = await outcome(event.id as string, 'scheduled');
    expect(scheduled.effectiveAt).toBe(effectiveAt);
    expect(scheduled.scheduledSequenceNumber).toMatch(/^\d+$/);
    expect(scheduled.notes.join(' ')).toMatch(/Scheduled for the leave date/);
    expect(world.serviceBus.stats('employee-leaving').scheduled).toBe(scheduledBefore + 1);
    // Only the read that checks the user exists; nothing written before the date.
    expect(world.graph.writes()).toHaveLength(0);
  });

  it('treats HR resending a scheduled departure as a duplicate', async () => {
    const effectiveAt = new Date(Date.now() + 3_600_000).toISOString();
    const event = cloudEvent('employee.leaving', { user: bob.upn, effectiveAt });
    await pipeline.send('employee-leaving', event, 'hr-send-1');
    await outcome(event.id as string, 'scheduled');
    const scheduled = world.serviceBus.stats('employee-leaving').scheduled;
    await pipeline.send('employee-leaving', event, 'hr-send-2');
    const counted = await waitFor('the resend to be counted', async () => {
      const r = await record(event.id as string);
      return r !== undefined && r.duplicates === 1 ? r : undefined;
    });
    expect(counted.outcome).toBe('scheduled');
    expect(world.serviceBus.stats('employee-leaving').scheduled).toBe(scheduled);
  });

  it('acts now when the leave date is in the past', async () => {
    const event = cloudEvent('employee.leaving', {
      user: bob.upn,
      effectiveAt: '2020-01-01T00:00:00Z',
      disableAccount: false,
    });
    await pipeline.send('employee-leaving', event);
    const done = await outcome(event.id as string, 'succeeded');
    expect(done.verification?.verified).toBe(true);
  });

  it('runs the scheduled copy when it arrives', async () => {
    const effectiveAt = new Date(Date.now() + 8_000).toISOString();
    const event = cloudEvent('mfa.enabled', { user: bob.upn });
    // mfa events have no leave date; use a leaver with a date just past the tolerance instead.
    const leaver = cloudEvent('employee.leaving', {
      user: ALICE_UPN,
      effectiveAt,
      disableAccount: false,
    });
    await pipeline.send('employee-leaving', leaver);
    await outcome(leaver.id as string, 'scheduled');
    await pipeline.send('mfa-enabled', event);
    const done = await waitFor(
      'the departure to run on its date',
      async () => {
        const r = await record(leaver.id as string);
        return r?.outcome === 'succeeded' ? r : undefined;
      },
      30_000,
    );
    expect(done.objectId).toBe(ALICE_ID);
    expect(done.attempts).toBe(2);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(effectiveAt) - 1000);
  }, 60_000);

  it('cancels a pending departure on employee.leaving.cancelled and audits both', async () => {
    world.graph.reset();
    // A person of its own: an earlier test's departure of alice still stands (she was never
    // reinstated), and a cancellation cannot keep a person an earlier departure disabled.
    const person = world.newUser();
    const effectiveAt = new Date(Date.now() + 3_600_000).toISOString();
    const departure = cloudEvent('employee.leaving', { user: person.upn, effectiveAt });
    await pipeline.send('employee-leaving', departure);
    await outcome(departure.id as string, 'scheduled');
    const scheduledBefore = world.serviceBus.stats('employee-leaving').scheduled;

    const cancel = cloudEvent('employee.leaving.cancelled', {
      user: person.id,
      reason: 'withdrew resignation',
    });
    await pipeline.send('employee-leaving', cancel);
    const cancellation = await outcome(cancel.id as string, 'succeeded');
    expect(cancellation.notes.join(' ')).toContain(`Cancelled departure ${departure.id as string}`);
    const cancelled = await outcome(departure.id as string, 'cancelled');
    expect(cancelled.notes.join(' ')).toContain(`Cancelled by event ${cancel.id as string}`);
    expect(world.serviceBus.stats('employee-leaving').scheduled).toBe(scheduledBefore - 1);
    expect(world.graph.writes()).toHaveLength(0);
  });

  it('reports a cancellation that comes after the departure was carried out', async () => {
    const departure = cloudEvent('employee.leaving', { user: bob.upn, disableAccount: false });
    await pipeline.send('employee-leaving', departure);
    await outcome(departure.id as string, 'succeeded');
    const cancel = cloudEvent('employee.leaving.cancelled', { user: bob.upn });
    await pipeline.send('employee-leaving', cancel);
    const failed = await waitFor('the cancellation to fail', async () => {
      const r = await record(cancel.id as string);
      return r?.errorCode === 'DepartureAlreadyExecuted' ? r : undefined;
    });
    expect(failed.errorMessage).toMatch(/send employee\.reinstated \(or run offboard reinstate\)/);
  });

  it('refuses leave dates more than a year ahead', async () => {
    const event = cloudEvent('employee.leaving', {
      user: bob.upn,
      effectiveAt: '2099-01-01T00:00:00Z',
    });
    await pipeline.send('employee-leaving', event);
    const failed = await waitFor('the rejection', async () => {
      const r = await record(event.id as string);
      return r?.errorCode === 'InvalidEvent' ? r : undefined;
    });
    expect(failed.errorMessage).toMatch(/more than 365 days ahead/);
  });
});
