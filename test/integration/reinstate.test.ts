/**
 * Reinstatement end to end: employee.reinstated through the function handler (Service Bus stand-in,
 * local runner) and the real Graph client against the Graph stand-in, with the audit in Azurite.
 * A run by hand (`offboard reinstate`) goes through the same use case with route `command`.
 */
import { randomUUID } from 'node:crypto';
import { BREAKGLASS_ID, BREAKGLASS_UPN } from '../../dev/graph-standin/index';
import { latestRecordFor } from '../../shared/core/auditRecords';
import { AppMessageIdPrefixes } from '../../shared/core/messaging';
import type { AuditRecord } from '../../shared/core/ports';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let pipeline: Pipeline;

beforeAll(async () => {
  world = await startWorld();
  pipeline = startPipeline(world);
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
});

const record = (id: string) => latestRecordFor(world.runtime.audit, id);
const settled = (id: string, wanted: AuditRecord['outcome']) =>
  waitFor(`${id} to be ${wanted}`, async () => {
    const r = await record(id);
    return r?.outcome === wanted && r.claimedBy === undefined ? r : undefined;
  });

/** A user whose departure this app carried out: the account is disabled in the stand-in. */
async function departedUser() {
  const user = world.newUser();
  const departure = cloudEvent('employee.leaving', { user: user.upn });
  await pipeline.send('employee-leaving', departure);
  await settled(departure.id as string, 'succeeded');
  expect(world.graph.getUser(user.id)?.accountEnabled).toBe(false);
  return { ...user, departureId: departure.id as string };
}

describe('reinstatement from the employee-leaving queue', () => {
  it('re-enables exactly the departed account: one PATCH accountEnabled true, audited as its own event', async () => {
    const alice = await departedUser();
    const bystander = await departedUser();
    world.graph.reset();

    const event = cloudEvent('employee.reinstated', { user: alice.upn, reason: 'rehired' });
    await pipeline.send('employee-leaving', event);
    const done = await settled(event.id as string, 'succeeded');

    expect(done.requestedActions).toEqual(['enableAccount']);
    expect(done.actions).toMatchObject([{ action: 'enableAccount', status: 'succeeded' }]);
    expect(done.objectId).toBe(alice.id);
    expect(done.notes.join(' ')).toContain(`Undoes departure ${alice.departureId}`);
    expect(done.notes.join(' ')).toMatch(/Next \(helpdesk\)/);
    const writes = world.graph.writes();
    expect(writes.map((w) => [w.method, w.decodedPath, w.body])).toEqual([
      ['PATCH', `/v1.0/users/${alice.id}`, { accountEnabled: true }],
    ]);
    expect(world.graph.getUser(alice.id)?.accountEnabled).toBe(true);
    expect(world.graph.getUser(bystander.id)?.accountEnabled).toBe(false);
    // The departure's record is untouched.
    expect((await record(alice.departureId))?.outcome).toBe('succeeded');
  });

  it('refuses a protected account, writes nothing, and the message heads for the dead-letter queue', async () => {
    world.graph.reset();
    const event = cloudEvent('employee.reinstated', { user: BREAKGLASS_UPN });
    await pipeline.send('employee-leaving', event);
    const refused = await settled(event.id as string, 'refused');

    expect(refused.errorCode).toBe('ProtectedAccount');
    expect(world.graph.writes()).toHaveLength(0);
    await waitFor('the refused reinstatement to be dead-lettered', () =>
      Promise.resolve(
        world.serviceBus
          .deadLetters('employee-leaving')
          .find((d) => (d.body as { id?: string }).id === event.id),
      ),
    );
  });

  it('refuses an account this app did not disable, with a permanent NotDisabledByThisApp', async () => {
    const carol = world.newUser();
    world.graph.addUser({
      id: carol.id,
      userPrincipalName: carol.upn,
      accountEnabled: false, // disabled by someone else
    });
    world.graph.reset();

    const event = cloudEvent('employee.reinstated', { user: carol.upn });
    await pipeline.send('employee-leaving', event);
    const failed = await settled(event.id as string, 'failed');

    expect(failed.errorCode).toBe('NotDisabledByThisApp');
    expect(failed.retryable).toBe(false);
    expect(failed.errorMessage).toMatch(/offboard reinstate --force/);
    expect(world.graph.writes()).toHaveLength(0);
    expect(world.graph.getUser(carol.id)?.accountEnabled).toBe(false);
  });
});

describe('reinstatement by hand (offboard reinstate)', () => {
  const byHand = (user: string, force: boolean) =>
    world.runtime.offboarding.process({
      body: {
        ...cloudEvent('employee.reinstated', { user, reason: 'manager asked' }),
        source: 'offboard-cli/reinstate',
      },
      route: 'command',
      messageId: `${AppMessageIdPrefixes.command}${randomUUID()}`,
      ...(force
        ? { force: { by: 'ops.oncall', reason: 'rehire', at: new Date().toISOString() } }
        : {}),
    });

  it('--force re-enables an account this app did not disable, and never a protected one', async () => {
    const dan = world.newUser();
    world.graph.addUser({ id: dan.id, userPrincipalName: dan.upn, accountEnabled: false });
    world.graph.reset();

    const unforced = await byHand(dan.upn, false);
    expect(unforced.record.errorCode).toBe('NotDisabledByThisApp');
    expect(world.graph.writes()).toHaveLength(0);

    const forced = await byHand(dan.upn, true);
    expect(forced.record.outcome).toBe('succeeded');
    expect(forced.record.notes.join(' ')).toMatch(/Forced by ops\.oncall/);
    expect(world.graph.getUser(dan.id)?.accountEnabled).toBe(true);
    expect(world.graph.writes().map((w) => w.decodedPath)).toEqual([`/v1.0/users/${dan.id}`]);

    world.graph.reset();
    const breakglass = await byHand(BREAKGLASS_ID, true);
    expect(breakglass.record.outcome).toBe('refused');
    expect(world.graph.writes()).toHaveLength(0);
  });
});
