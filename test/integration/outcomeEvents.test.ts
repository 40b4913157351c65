/**
 * Outcome events end to end: events through the real function handler (the use case, the Graph
 * client against the Graph stand-in, the audit in Azurite), and every final outcome read back from
 * the outcome topic's sample subscription on the Service Bus stand-in with the real SDK, as an
 * HR/ITSM subscriber would.
 */
import {
  ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import { randomUUID } from 'node:crypto';
import { BREAKGLASS_UPN, SYNCED_UPN } from '../../dev/graph-standin/index';
import { createQueueHandler, SettlementError } from '../../shared/adapters/functionHandler';
import type { Runtime } from '../../shared/app/runtime';
import { latestRecordFor } from '../../shared/core/auditRecords';
import type { OutcomeEvent } from '../../shared/core/outcomeEvent';
import type { AuditRecord } from '../../shared/core/ports';
import type { RouteName } from '../../shared/core/routes';
import { waitFor } from '../support/wait';
import {
  OUTCOME_SUBSCRIPTION,
  OUTCOME_TOPIC,
  cloudEvent,
  startWorld,
  type World,
} from '../support/world';

jest.setTimeout(60_000);

let world: World;
let subscriber: ServiceBusClient;
let receiver: ServiceBusReceiver;
const received: ServiceBusReceivedMessage[] = [];

beforeAll(async () => {
  world = await startWorld();
  subscriber = new ServiceBusClient(world.serviceBus.connectionString);
  receiver = subscriber.createReceiver(OUTCOME_TOPIC, OUTCOME_SUBSCRIPTION, {
    receiveMode: 'receiveAndDelete',
  });
  receiver.subscribe({
    processMessage: (message) => {
      received.push(message);
      return Promise.resolve();
    },
    processError: () => Promise.resolve(),
  });
});
afterAll(async () => {
  await receiver.close();
  await subscriber.close();
  await world.stop();
});

/** One delivery through the function handler: undefined when it completed, else why it threw. */
async function deliver(
  route: RouteName,
  body: unknown,
  options: { messageId?: string; deliveryCount?: number; runtime?: Runtime } = {},
): Promise<SettlementError | undefined> {
  const runtime = options.runtime ?? world.runtime;
  try {
    await createQueueHandler(() => runtime, route)(
      body,
      world.context({
        messageId: options.messageId ?? randomUUID(),
        deliveryCount: options.deliveryCount ?? 1,
      }),
    );
    return undefined;
  } catch (error) {
    if (error instanceof SettlementError) return error;
    throw error;
  }
}

const bodyOf = (message: ServiceBusReceivedMessage) => message.body as OutcomeEvent;
const outcomesAbout = (eventId: string) =>
  received.filter((m) => bodyOf(m).data.event.id === eventId);

/** Waits for the outcome event about `eventId` announcing `outcome`. */
const outcomeEvent = (eventId: string, outcome: OutcomeEvent['outcome']) =>
  waitFor(`the ${outcome} outcome of ${eventId} on the topic`, () =>
    outcomesAbout(eventId).find((m) => bodyOf(m).outcome === outcome),
  );

const recordOf = async (eventId: string, runtime: Runtime = world.runtime) => {
  const record = await latestRecordFor(runtime.audit, eventId);
  if (record === undefined) throw new Error(`no record for ${eventId}`);
  return record;
};

/** Every password the app sent to Graph, from the stand-in's record of request bodies. */
function passwordsSent(): string[] {
  return world.graph.requests.flatMap((request) => {
    const body = request.body as { passwordProfile?: { password?: unknown } } | undefined;
    const password = body?.passwordProfile?.password;
    return typeof password === 'string' ? [password] : [];
  });
}

/** Every access token the app presented to Graph. */
function tokensSent(): string[] {
  return world.graph.requests.flatMap((request) => {
    const header = request.headers.authorization ?? '';
    return header.startsWith('Bearer ') ? [header.slice('Bearer '.length)] : [];
  });
}

/** The message as a subscriber sees it: body, properties, subject, all as text. */
const everything = (message: ServiceBusReceivedMessage) =>
  JSON.stringify({
    body: message.body as unknown,
    properties: message.applicationProperties,
    subject: message.subject,
    messageId: message.messageId,
  });

/** A user this app has offboarded (disabled, password reset): for the reinstatement. */
let departed: { id: string; upn: string } | undefined;

describe('an outcome event per final outcome', () => {
  it('succeeded: the original event, ticket, user, each action, verification and the access cut-off', async () => {
    const user = world.newUser();
    const event = cloudEvent('employee.leaving', {
      user: user.upn,
      disableAccount: true,
      resetPassword: true,
      ticket: 'HR-1001',
    });
    expect(await deliver('employeeLeaving', event)).toBeUndefined();
    const record = await recordOf(event.id as string);
    expect(record.outcome).toBe('succeeded');
    departed = user;

    const message = await outcomeEvent(event.id as string, 'succeeded');
    const body = bodyOf(message);
    expect(message.contentType).toBe('application/cloudevents+json');
    expect(message.messageId).toBe(body.id);
    expect(message.subject).toBe(user.id);
    expect(message.applicationProperties).toEqual({
      outcome: 'succeeded',
      eventType: 'employee.leaving',
      dryRun: false,
    });
    expect(body).toMatchObject({
      specversion: '1.0',
      type: 'offboarding.outcome.succeeded',
      subject: user.id,
      datacontenttype: 'application/json',
    });
    expect(body.data).toMatchObject({
      outcome: 'succeeded',
      event: { source: '/hr/workday', id: event.id, type: 'employee.leaving', time: event.time },
      ticket: 'HR-1001',
      user: { objectId: user.id, userPrincipalName: user.upn },
      verification: { verified: true },
    });
    expect(body.data.actions.map((a) => `${a.action}:${a.status}`).sort()).toEqual([
      'disableAccount:succeeded',
      'resetPassword:succeeded',
      'revokeSignInSessions:succeeded',
    ]);
    // The cut-off as the audit states it (shared/core/accessCutoff.ts), not re-worded.
    expect(record.accessCutoff?.caeAppsBy).toBeDefined();
    expect(body.data.accessCutoff).toEqual(record.accessCutoff);
  });

  it('failed permanently: the error code and which action failed', async () => {
    const event = cloudEvent('employee.leaving', { user: SYNCED_UPN, disableAccount: true });
    const thrown = await deliver('employeeLeaving', event);
    expect(thrown?.retryable).toBe(false);
    const body = bodyOf(await outcomeEvent(event.id as string, 'failed'));
    expect(body.data.error?.code).toBe('OnPremisesMastered');
    expect(body.data.actions).toContainEqual({
      action: 'disableAccount',
      status: 'failed',
      errorCode: 'OnPremisesMastered',
    });
  });

  it('refused: a protected account', async () => {
    const event = cloudEvent('employee.leaving', { user: BREAKGLASS_UPN });
    await deliver('employeeLeaving', event);
    const body = bodyOf(await outcomeEvent(event.id as string, 'refused'));
    expect(body.data.error?.code).toBe('ProtectedAccount');
    expect(body.data.actions.every((a) => a.status === 'not-attempted')).toBe(true);
  });

  it('cancelled: a departure stopped before its leave date, and the cancellation itself', async () => {
    const user = world.newUser();
    const effectiveAt = new Date(Date.now() + 3_600_000).toISOString();
    const departure = cloudEvent('employee.leaving', { user: user.upn, effectiveAt });
    await deliver('employeeLeaving', departure);
    expect((await recordOf(departure.id as string)).outcome).toBe('scheduled');

    const cancellation = cloudEvent('employee.leaving.cancelled', { user: user.upn });
    expect(await deliver('employeeLeaving', cancellation)).toBeUndefined();
    await outcomeEvent(departure.id as string, 'cancelled');
    await outcomeEvent(cancellation.id as string, 'succeeded');
    // Waiting for the leave date is not final: nothing was announced for it.
    expect(outcomesAbout(departure.id as string).map((m) => bodyOf(m).outcome)).toEqual([
      'cancelled',
    ]);
  });

  it('reinstated: the account this app disabled is enabled again', async () => {
    if (departed === undefined) throw new Error('the succeeded case runs first');
    const event = cloudEvent('employee.reinstated', { user: departed.upn, reason: 'rehired' });
    expect(await deliver('employeeLeaving', event)).toBeUndefined();
    const message = await outcomeEvent(event.id as string, 'reinstated');
    expect(message.applicationProperties).toMatchObject({
      outcome: 'reinstated',
      eventType: 'employee.reinstated',
    });
    expect(bodyOf(message).data.actions).toEqual([
      { action: 'enableAccount', status: 'succeeded' },
    ]);
  });

  it('dry-run: what would have run', async () => {
    const dryRun = world.runtimeWith({
      DRY_RUN: 'true',
      AUDIT_TABLE_NAME: `Dry${randomUUID().replace(/-/g, '').slice(0, 20)}`,
    });
    const user = world.newUser();
    const event = cloudEvent('mfa.enabled', { user: user.upn });
    await deliver('mfaEnabled', event, { runtime: dryRun });
    const message = await outcomeEvent(event.id as string, 'dry-run');
    expect(message.applicationProperties).toMatchObject({ outcome: 'dry-run', dryRun: true });
    expect(bodyOf(message).data.actions).toEqual([
      { action: 'revokeSignInSessions', status: 'would-run' },
    ]);
  });

  it('held: the guardrail tripped, which one (not its limit or count), and no Graph write', async () => {
    // Tables of its own: the trip latches for the route, and must not hold the other cases.
    const fresh = randomUUID().replace(/-/g, '').slice(0, 20);
    const guarded = world.runtimeWith({
      GUARDRAIL_MFA_PER_WINDOW: '1',
      AUDIT_TABLE_NAME: `Held${fresh}`,
      GUARDRAIL_TABLE_NAME: `HeldGuardrail${fresh}`,
    });
    const users = [world.newUser(), world.newUser(), world.newUser()];
    const events = users.map((u) => cloudEvent('mfa.enabled', { user: u.upn }));
    for (const event of events) await deliver('mfaEnabled', event, { runtime: guarded });
    const held: { record: AuditRecord; userId: string }[] = [];
    for (const [i, event] of events.entries()) {
      const record = await recordOf(event.id as string, guarded);
      if (record.outcome === 'held') held.push({ record, userId: users[i]?.id ?? '' });
    }
    expect(held.length).toBeGreaterThan(0);
    for (const { record, userId } of held) {
      const body = bodyOf(await outcomeEvent(record.eventId, 'held'));
      // The audit keeps the count and the limit; subscribers learn which guardrail, no more.
      expect(record.guardrail?.heldReason).toMatch(/limit 1/);
      expect(body.data.heldReason).toBe(
        'The blast-radius guardrail for mfa.enabled events is tripped: nothing was written. Held until an operator releases or discards it.',
      );
      expect(JSON.stringify(body)).not.toMatch(/limit|executed in/);
      expect(world.graph.writes().filter((w) => w.userId === userId)).toEqual([]);
    }
  });

  it('an invalid message: failed with InvalidEvent, marked as such', async () => {
    const id = `evt-invalid-${randomUUID()}`;
    await deliver('employeeLeaving', { specversion: '1.0', id, type: 'employee.leaving' });
    const message = await outcomeEvent(id, 'failed');
    expect(bodyOf(message).data).toMatchObject({
      invalidMessage: true,
      error: { code: 'InvalidEvent' },
      event: { id },
    });
    expect(message.applicationProperties).toMatchObject({
      eventType: '',
      errorCode: 'InvalidEvent',
    });
  });

  it('none carries a generated password or an access token', () => {
    const passwords = passwordsSent();
    const tokens = tokensSent();
    // The checks below see real secrets: a reset and Graph calls happened in this file.
    expect(passwords.length).toBeGreaterThan(0);
    expect(tokens.length).toBeGreaterThan(0);
    expect(received.length).toBeGreaterThanOrEqual(9);
    for (const message of received) {
      const text = everything(message);
      for (const secret of [...passwords, ...tokens]) expect(text).not.toContain(secret);
      expect(text).not.toMatch(/passwordProfile|Bearer |eyJ[A-Za-z0-9_-]{10,}/);
    }
  });
});

describe('at least once, with a deterministic id', () => {
  it('a duplicate delivery publishes the same id again, which the topic drops', async () => {
    const user = world.newUser();
    const event = cloudEvent('mfa.enabled', { user: user.upn });
    await deliver('mfaEnabled', event);
    const first = await outcomeEvent(event.id as string, 'succeeded');
    const droppedBefore = world.serviceBus.topicStats(OUTCOME_TOPIC).duplicatesDropped;

    // HR sends it again (a new message): the record is final, the sinks are given it again.
    expect(await deliver('mfaEnabled', event)).toBeUndefined();
    expect((await recordOf(event.id as string)).duplicates).toBe(1);
    // The topic saw the same MessageId (the event id) and dropped it: subscribers get it once.
    await waitFor('the repeat to reach the topic', () =>
      world.serviceBus.topicStats(OUTCOME_TOPIC).duplicatesDropped === droppedBefore + 1
        ? true
        : undefined,
    );
    expect(outcomesAbout(event.id as string)).toHaveLength(1);
    expect(first.messageId).toBe(bodyOf(first).id);
  });

  it('topic down: a copy comes back later, nothing is redone, and the event is published once it is back', async () => {
    const user = world.newUser();
    const event = cloudEvent('employee.leaving', { user: user.upn, disableAccount: true });
    const messageId = randomUUID();
    world.serviceBus.setTopicStatus(OUTCOME_TOPIC, 'SendDisabled');
    let thrown: SettlementError | undefined;
    try {
      thrown = await deliver('employeeLeaving', event, { messageId });
    } finally {
      world.serviceBus.setTopicStatus(OUTCOME_TOPIC, 'Active');
    }
    // The message completes with a copy parked for later (no attempt used); the audit says succeeded.
    expect(thrown).toBeUndefined();
    expect(world.serviceBus.stats('employee-leaving').scheduled).toBeGreaterThanOrEqual(1);
    const before = await recordOf(event.id as string);
    expect(before.outcome).toBe('succeeded');
    const writes = world.graph.writes().filter((w) => w.userId === user.id).length;
    expect(writes).toBe(2);
    expect(outcomesAbout(event.id as string)).toEqual([]);

    // The parked copy (here: the same event delivered again), with the topic back.
    expect(
      await deliver('employeeLeaving', event, { messageId, deliveryCount: 2 }),
    ).toBeUndefined();
    const message = await outcomeEvent(event.id as string, 'succeeded');
    expect(bodyOf(message).data.accessCutoff).toEqual(before.accessCutoff);
    const after = await recordOf(event.id as string);
    expect(after.duplicates).toBe(before.duplicates + 1);
    expect(after.lastDuplicateAt).toBeDefined();
    // Nothing else on the record moved: only the repeat was counted.
    expect({ ...after, duplicates: 0, lastDuplicateAt: '' }).toEqual({
      ...before,
      duplicates: 0,
      lastDuplicateAt: '',
    });
    expect(world.graph.writes().filter((w) => w.userId === user.id)).toHaveLength(writes);
    expect(outcomesAbout(event.id as string)).toHaveLength(1);
  });
});
