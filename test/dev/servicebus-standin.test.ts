/**
 * Drives the Service Bus stand-in (dev/servicebus-standin) with the real @azure/service-bus SDK.
 *
 * By default every test gets a fresh stand-in queue (lock 1.5 s, maxDeliveryCount 3).
 *
 * To run the same tests against a real namespace or the official emulator, set
 * SERVICEBUS_CONNECTION_STRING and create two queues (each test purges them first):
 *   - SERVICEBUS_TEST_QUEUE (default `standin-test`): no sessions, no partitioning,
 *     maxDeliveryCount 3, lock duration 5 s (or set SERVICEBUS_TEST_LOCK_DURATION_MS /
 *     SERVICEBUS_TEST_MAX_DELIVERY_COUNT to what the queue has), dead-lettering on expiration off.
 *   - SERVICEBUS_TEST_DEDUP_QUEUE (default `standin-test-dedup`): as above plus
 *     requiresDuplicateDetection with a window of at least a minute.
 * Assertions that need stand-in introspection (stats(), deadLetters(), deadLetterSource) are
 * skipped in that mode.
 */
import type { ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import { isServiceBusError, ServiceBusClient } from '@azure/service-bus';
import type { ServiceBusTarget } from './servicebus-target';
import { startServiceBusTarget } from './servicebus-target';

jest.setTimeout(30_000);

let target: ServiceBusTarget;
let client: ServiceBusClient;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  target = await startServiceBusTarget();
  client = new ServiceBusClient(target.connectionString);
});

afterAll(async () => {
  await client?.close();
  await target?.stop();
});

/** Receives until `count` messages arrived or the wait runs out. */
async function receive(
  receiver: ServiceBusReceiver,
  count: number,
  maxWaitTimeInMs = 3000,
): Promise<ServiceBusReceivedMessage[]> {
  const received: ServiceBusReceivedMessage[] = [];
  const deadline = Date.now() + maxWaitTimeInMs;
  while (received.length < count && Date.now() < deadline) {
    const batch = await receiver.receiveMessages(count - received.length, {
      maxWaitTimeInMs: Math.max(100, deadline - Date.now()),
    });
    received.push(...batch);
  }
  return received;
}

async function expectErrorCode(promise: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(isServiceBusError(caught) ? caught.code : caught).toBe(code);
}

const standInOnly = (): boolean => target.standIn !== undefined;

test('send, receive and complete', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  try {
    await sender.sendMessages({ body: { employeeId: 'e-1' }, messageId: 'm-1' });
    const [message] = await receive(receiver, 1);
    expect(message?.body).toEqual({ employeeId: 'e-1' });
    expect(message?.messageId).toBe('m-1');
    expect(message?.deliveryCount).toBe(0);
    expect(message?.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(message?.sequenceNumber?.toNumber()).toBeGreaterThan(0);
    expect(message?.enqueuedTimeUtc?.getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(message?.lockedUntilUtc?.getTime()).toBeGreaterThan(Date.now());
    if (standInOnly()) expect(target.standIn?.stats(queue)).toMatchObject({ locked: 1 });
    await receiver.completeMessage(message!);
    expect(await receive(receiver, 1, 500)).toHaveLength(0);
    if (standInOnly()) {
      expect(target.standIn?.stats(queue)).toEqual({
        active: 0,
        locked: 0,
        scheduled: 0,
        deadLettered: 0,
        completed: 1,
        duplicatesDropped: 0,
      });
    }
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('batch send keeps order and assigns increasing sequence numbers', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  try {
    const batch = await sender.createMessageBatch();
    expect(batch.maxSizeInBytes).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) expect(batch.tryAddMessage({ body: `b-${i}` })).toBe(true);
    await sender.sendMessages(batch);
    await sender.sendMessages([{ body: 'a-0' }, { body: 'a-1' }]);
    const messages = await receive(receiver, 7);
    expect(messages.map((m): unknown => m.body)).toEqual([
      'b-0',
      'b-1',
      'b-2',
      'b-3',
      'b-4',
      'a-0',
      'a-1',
    ]);
    const sequence = messages.map((m) => m.sequenceNumber!.toNumber());
    expect([...sequence].sort((a, b) => a - b)).toEqual(sequence);
    expect(new Set(sequence).size).toBe(7);
    for (const message of messages) await receiver.completeMessage(message);
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('bodies and application properties round-trip', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  try {
    const when = new Date('2024-05-01T12:00:00Z');
    await sender.sendMessages([
      {
        body: { user: { id: 'u-1', upn: 'a@contoso.com' }, reasons: ['left', 'mfa'] },
        contentType: 'application/json',
        correlationId: 'corr-1',
        subject: 'employee-leaving',
        applicationProperties: { attempt: 2, source: 'hr', urgent: true, at: when, ratio: 0.5 },
      },
      { body: 'plain text' },
      { body: Buffer.from([0, 1, 2, 250]) },
    ]);
    const [json, text, binary] = await receive(receiver, 3);
    expect(json?.body).toEqual({
      user: { id: 'u-1', upn: 'a@contoso.com' },
      reasons: ['left', 'mfa'],
    });
    expect(json?.contentType).toBe('application/json');
    expect(json?.correlationId).toBe('corr-1');
    expect(json?.subject).toBe('employee-leaving');
    // The SDK turns Date application properties into epoch milliseconds on receive.
    expect(json?.applicationProperties).toEqual({
      attempt: 2,
      source: 'hr',
      urgent: true,
      at: when.getTime(),
      ratio: 0.5,
    });
    expect(text?.body).toBe('plain text');
    expect(Buffer.isBuffer(binary?.body)).toBe(true);
    expect([...(binary?.body as Buffer)]).toEqual([0, 1, 2, 250]);
    for (const message of [json, text, binary]) await receiver.completeMessage(message!);
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('abandon until MaxDeliveryCountExceeded moves the message to the dead-letter queue', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  const dlq = client.createReceiver(queue, { subQueueType: 'deadLetter' });
  try {
    await sender.sendMessages({ body: 'poison', messageId: 'poison-1' });
    const counts: number[] = [];
    for (let i = 0; i < target.maxDeliveryCount; i++) {
      const [message] = await receive(receiver, 1);
      counts.push(message!.deliveryCount!);
      await receiver.abandonMessage(message!, { lastError: `attempt ${i}` });
    }
    expect(counts).toEqual([...Array(target.maxDeliveryCount).keys()]);
    expect(await receive(receiver, 1, 500)).toHaveLength(0);
    const [dead] = await receive(dlq, 1);
    expect(dead?.messageId).toBe('poison-1');
    expect(dead?.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    expect(dead?.applicationProperties?.lastError).toBe(`attempt ${target.maxDeliveryCount - 1}`);
    if (standInOnly()) {
      expect(target.standIn?.deadLetters(queue)).toEqual([
        expect.objectContaining({
          messageId: 'poison-1',
          reason: 'MaxDeliveryCountExceeded',
          deliveryCount: target.maxDeliveryCount,
          body: 'poison',
        }),
      ]);
    }
    await dlq.completeMessage(dead!);
  } finally {
    await dlq.close();
    await receiver.close();
    await sender.close();
  }
});

test('explicit dead-letter with reason and description, completed from the DLQ', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  const dlq = client.createReceiver(queue, { subQueueType: 'deadLetter' });
  try {
    await sender.sendMessages({ body: { employeeId: 'x' }, applicationProperties: { kind: 'hr' } });
    const [message] = await receive(receiver, 1);
    await receiver.deadLetterMessage(message!, {
      deadLetterReason: 'ValidationFailed',
      deadLetterErrorDescription: 'employeeId is not a GUID',
    });
    if (standInOnly()) {
      expect(target.standIn?.stats(queue)).toMatchObject({ active: 0, locked: 0, deadLettered: 1 });
      expect(target.standIn?.deadLetters(queue)).toEqual([
        {
          // Service Bus assigns a MessageId when the sender gives none.
          messageId: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown,
          reason: 'ValidationFailed',
          description: 'employeeId is not a GUID',
          deliveryCount: 0,
          body: { employeeId: 'x' },
          applicationProperties: {
            kind: 'hr',
            DeadLetterReason: 'ValidationFailed',
            DeadLetterErrorDescription: 'employeeId is not a GUID',
          },
        },
      ]);
    }
    const [dead] = await receive(dlq, 1);
    expect(dead?.body).toEqual({ employeeId: 'x' });
    expect(dead?.deadLetterReason).toBe('ValidationFailed');
    expect(dead?.deadLetterErrorDescription).toBe('employeeId is not a GUID');
    expect(dead?.applicationProperties?.kind).toBe('hr');
    // Azure sets deadLetterSource only on messages auto-forwarded out of a DLQ; the stand-in
    // always sets it.
    if (standInOnly()) expect(dead?.deadLetterSource).toBe(queue);
    await dlq.completeMessage(dead!);
    expect(await receive(dlq, 1, 500)).toHaveLength(0);
    if (standInOnly()) expect(target.standIn?.stats(queue).deadLettered).toBe(0);
  } finally {
    await dlq.close();
    await receiver.close();
    await sender.close();
  }
});

test('peekMessages on the queue and on the dead-letter queue', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  const dlq = client.createReceiver(queue, { subQueueType: 'deadLetter' });
  try {
    await sender.sendMessages([{ body: 'p-0' }, { body: 'p-1' }, { body: 'p-2' }]);
    const peeked = await receiver.peekMessages(10);
    expect(peeked.map((m): unknown => m.body)).toEqual(['p-0', 'p-1', 'p-2']);
    expect(peeked[0]?.lockToken).toBeUndefined();
    const received = await receive(receiver, 2);
    for (const message of received) {
      await receiver.deadLetterMessage(message, {
        deadLetterReason: 'Peeked',
        deadLetterErrorDescription: 'peek test',
      });
    }
    const deadPeek = await dlq.peekMessages(10);
    expect(deadPeek.map((m): unknown => m.body)).toEqual(['p-0', 'p-1']);
    expect(deadPeek.map((m) => m.deadLetterReason)).toEqual(['Peeked', 'Peeked']);
    // Peek does not lock: the messages are still receivable.
    const dead = await receive(dlq, 2);
    expect(dead).toHaveLength(2);
    for (const message of dead) await dlq.completeMessage(message);
    expect(await dlq.peekMessages(10, { fromSequenceNumber: undefined })).toHaveLength(0);
    const rest = await receive(receiver, 1);
    await receiver.completeMessage(rest[0]!);
  } finally {
    await dlq.close();
    await receiver.close();
    await sender.close();
  }
});

test('scheduled messages arrive at their time; cancelled ones never do', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  try {
    const at = new Date(Date.now() + 2000);
    const [kept] = await sender.scheduleMessages({ body: 'later', messageId: 'later-1' }, at);
    const [cancelled] = await sender.scheduleMessages({ body: 'never' }, at);
    expect(kept!.toNumber()).toBeGreaterThan(0);
    expect(cancelled!.toNumber()).toBeGreaterThan(kept!.toNumber());
    await sender.cancelScheduledMessages(cancelled!);
    if (standInOnly()) expect(target.standIn?.stats(queue)).toMatchObject({ scheduled: 1 });
    const peeked = await receiver.peekMessages(10);
    expect(peeked.map((m) => m.state)).toEqual(['scheduled']);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 })).toHaveLength(0);
    const [message] = await receive(receiver, 1, 5000);
    expect(message?.body).toBe('later');
    expect(Date.now()).toBeGreaterThanOrEqual(at.getTime() - 50);
    expect(message?.scheduledEnqueueTimeUtc?.getTime()).toBe(at.getTime());
    await receiver.completeMessage(message!);
    expect(await receive(receiver, 1, 500)).toHaveLength(0);
    await expectErrorCode(sender.cancelScheduledMessages(cancelled!), 'MessageNotFound');
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('a message scheduled a month ahead stays scheduled (beyond what one Node timer holds)', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  try {
    const at = new Date(Date.now() + 30 * 24 * 3_600_000);
    const [sequenceNumber] = await sender.scheduleMessages({ body: 'leave date' }, at);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })).toHaveLength(0);
    const [peeked] = await receiver.peekMessages(1);
    expect(peeked?.state).toBe('scheduled');
    expect(peeked?.scheduledEnqueueTimeUtc?.getTime()).toBe(at.getTime());
    if (standInOnly())
      expect(target.standIn?.stats(queue)).toMatchObject({ scheduled: 1, active: 0 });
    await sender.cancelScheduledMessages(sequenceNumber!);
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('an expired lock redelivers the message and late settlement fails with MessageLockLost', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  try {
    await sender.sendMessages({ body: 'slow' });
    const [first] = await receive(receiver, 1);
    expect(first?.deliveryCount).toBe(0);
    await sleep(target.lockDurationMs + 300);
    if (standInOnly()) expect(target.standIn?.stats(queue)).toMatchObject({ active: 1, locked: 0 });
    const [second] = await receive(receiver, 1, 3000);
    expect(second?.body).toBe('slow');
    expect(second?.deliveryCount).toBe(1);
    expect(second?.lockToken).not.toBe(first?.lockToken);
    await expectErrorCode(receiver.completeMessage(first!), 'MessageLockLost');
    await expectErrorCode(receiver.renewMessageLock(first!), 'MessageLockLost');
    await receiver.completeMessage(second!);
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('renewMessageLock extends the lock past its original expiry', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  try {
    await sender.sendMessages({ body: 'renew me' });
    const [message] = await receive(receiver, 1);
    const original = message!.lockedUntilUtc!.getTime();
    await sleep(target.lockDurationMs / 2);
    const renewed = await receiver.renewMessageLock(message!);
    expect(renewed.getTime()).toBeGreaterThan(original);
    expect(message?.lockedUntilUtc?.getTime()).toBe(renewed.getTime());
    await sleep(target.lockDurationMs / 2 + 300); // past the original expiry
    if (standInOnly()) expect(target.standIn?.stats(queue)).toMatchObject({ locked: 1 });
    await receiver.completeMessage(message!);
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('duplicate detection drops a second message with the same MessageId', async () => {
  const queue = await target.queue('dedup');
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  try {
    // Unique per run: a real namespace remembers ids for the whole detection window.
    const id = `dup-${Date.now()}`;
    await sender.sendMessages({ body: 'first', messageId: id });
    await sender.sendMessages({ body: 'second', messageId: id });
    await sender.sendMessages({ body: 'other', messageId: `${id}-other` });
    const messages = await receive(receiver, 2);
    expect(await receive(receiver, 1, 500)).toHaveLength(0);
    expect(messages.map((m): unknown => m.body)).toEqual(['first', 'other']);
    if (standInOnly()) expect(target.standIn?.stats(queue).duplicatesDropped).toBe(1);
    for (const message of messages) await receiver.completeMessage(message);
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('subscribe() streams messages to a handler and completes them', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  const seen: unknown[] = [];
  try {
    await sender.sendMessages([{ body: 's-0' }, { body: 's-1' }, { body: 's-2' }]);
    const done = new Promise<void>((resolve, reject) => {
      const subscription = receiver.subscribe(
        {
          processMessage: async (message) => {
            seen.push(message.body);
            if (seen.length === 3) {
              // Let the SDK complete the third message before closing.
              setTimeout(() => void subscription.close().then(resolve, reject), 200);
            }
            return Promise.resolve();
          },
          processError: async (args) => {
            reject(args.error);
            return Promise.resolve();
          },
        },
        { maxConcurrentCalls: 2 },
      );
    });
    await done;
    expect(seen.sort()).toEqual(['s-0', 's-1', 's-2']);
    expect(await receiver.peekMessages(10)).toHaveLength(0);
    if (standInOnly()) expect(target.standIn?.stats(queue)).toMatchObject({ completed: 3 });
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('receiveAndDelete removes messages on delivery', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue, { receiveMode: 'receiveAndDelete' });
  try {
    await sender.sendMessages([{ body: 'r-0' }, { body: 'r-1' }]);
    const messages = await receive(receiver, 2);
    expect(messages.map((m): unknown => m.body)).toEqual(['r-0', 'r-1']);
    expect(messages[0]?.lockToken).toBeUndefined();
    expect(await receiver.peekMessages(10)).toHaveLength(0);
  } finally {
    await receiver.close();
    await sender.close();
  }
});

test('a message over 256 KB is refused with MessageSizeExceeded', async () => {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  try {
    await expectErrorCode(
      sender.sendMessages({ body: Buffer.alloc(300 * 1024, 1) }),
      'MessageSizeExceeded',
    );
    await sender.sendMessages({ body: Buffer.alloc(200 * 1024, 1) });
    if (standInOnly()) expect(target.standIn?.stats(queue).active).toBe(1);
  } finally {
    await sender.close();
  }
});

test('an unknown queue fails with MessagingEntityNotFound', async () => {
  const sender = client.createSender('no-such-queue-standin');
  try {
    await expectErrorCode(sender.sendMessages({ body: 'x' }), 'MessagingEntityNotFound');
  } finally {
    await sender.close();
  }
});

/**
 * Topics and subscriptions (the outcome topic). These need a topic with two subscriptions, which
 * the stand-in creates per test; against a real namespace they are skipped (its topics are not
 * part of the setup described at the top).
 */
describe('topics and subscriptions', () => {
  const topicTest = process.env.SERVICEBUS_CONNECTION_STRING ? test.skip : test;
  let topicCount = 0;

  /** A fresh topic with two subscriptions on the stand-in. */
  function newTopic(duplicateDetectionWindowMs = 0): { topic: string; subs: [string, string] } {
    topicCount += 1;
    const topic = `topic-${topicCount}`;
    target.standIn?.createTopic({
      name: topic,
      duplicateDetectionWindowMs,
      subscriptions: [
        { name: 'hr-itsm', lockDurationMs: 1500, maxDeliveryCount: 3 },
        { name: 'siem', lockDurationMs: 1500, maxDeliveryCount: 3 },
      ],
    });
    return { topic, subs: ['hr-itsm', 'siem'] };
  }

  topicTest('each subscription gets its own copy, with the topic sequence number', async () => {
    const { topic, subs } = newTopic();
    const sender = client.createSender(topic);
    const [hr, siem] = subs.map((s) => client.createReceiver(topic, s)) as [
      ServiceBusReceiver,
      ServiceBusReceiver,
    ];
    try {
      await sender.sendMessages({
        body: { outcome: 'succeeded' },
        messageId: 'o-1',
        contentType: 'application/cloudevents+json',
        applicationProperties: { outcome: 'succeeded' },
      });
      const [a] = await receive(hr, 1);
      const [b] = await receive(siem, 1);
      for (const m of [a, b]) {
        expect(m?.body).toEqual({ outcome: 'succeeded' });
        expect(m?.messageId).toBe('o-1');
        expect(m?.contentType).toBe('application/cloudevents+json');
        expect(m?.applicationProperties).toEqual({ outcome: 'succeeded' });
      }
      expect(a?.sequenceNumber?.toNumber()).toBe(b?.sequenceNumber?.toNumber());
      // Settling one copy leaves the other subscription's copy where it is.
      await hr.completeMessage(a!);
      expect(target.standIn?.stats(`${topic}/Subscriptions/hr-itsm`)).toMatchObject({
        completed: 1,
        locked: 0,
      });
      expect(target.standIn?.stats(`${topic}/Subscriptions/siem`)).toMatchObject({
        completed: 0,
        locked: 1,
      });
      await siem.abandonMessage(b!);
      const [again] = await receive(siem, 1);
      expect(again?.messageId).toBe('o-1');
      expect(again?.deliveryCount).toBe(1);
      expect(await receive(hr, 1, 500)).toHaveLength(0);
      expect(target.standIn?.topicStats(topic)).toEqual({
        accepted: 1,
        duplicatesDropped: 0,
        subscriptions: [`${topic}/Subscriptions/hr-itsm`, `${topic}/Subscriptions/siem`],
      });
    } finally {
      await Promise.all([sender.close(), hr.close(), siem.close()]);
    }
  });

  topicTest(
    'duplicate detection on the topic drops a repeated MessageId for every subscription',
    async () => {
      const { topic, subs } = newTopic(60_000);
      const sender = client.createSender(topic);
      const receivers = subs.map((s) =>
        client.createReceiver(topic, s, { receiveMode: 'receiveAndDelete' }),
      );
      try {
        await sender.sendMessages({ body: 'first', messageId: 'same-id' });
        await sender.sendMessages({ body: 'repeat', messageId: 'same-id' });
        await sender.sendMessages({ body: 'other', messageId: 'other-id' });
        for (const receiver of receivers) {
          const got = await receive(receiver, 3, 1500);
          expect(got.map((m): unknown => m.body)).toEqual(['first', 'other']);
        }
        expect(target.standIn?.topicStats(topic)).toMatchObject({
          accepted: 2,
          duplicatesDropped: 1,
        });
      } finally {
        await Promise.all([sender.close(), ...receivers.map((r) => r.close())]);
      }
    },
  );

  topicTest('a subscription has its own dead-letter queue and can be peeked', async () => {
    const { topic } = newTopic();
    const sender = client.createSender(topic);
    const receiver = client.createReceiver(topic, 'hr-itsm');
    const dlq = client.createReceiver(topic, 'hr-itsm', { subQueueType: 'deadLetter' });
    try {
      await sender.sendMessages([
        { body: 'poison', messageId: 'p-1' },
        { body: 'fine', messageId: 'f-1' },
      ]);
      const peeker = client.createReceiver(topic, 'siem');
      const peeked = await peeker.peekMessages(10);
      await peeker.close();
      expect(peeked.map((m) => m.messageId)).toEqual(['p-1', 'f-1']);
      const [poison] = await receive(receiver, 1);
      await receiver.deadLetterMessage(poison!, {
        deadLetterReason: 'Unparseable',
        deadLetterErrorDescription: 'not a CloudEvent',
      });
      const [dead] = await receive(dlq, 1);
      expect(dead?.messageId).toBe('p-1');
      expect(dead?.deadLetterReason).toBe('Unparseable');
      await dlq.completeMessage(dead!);
      expect(target.standIn?.stats(`${topic}/Subscriptions/hr-itsm`).deadLettered).toBe(0);
      expect(target.standIn?.stats(`${topic}/Subscriptions/siem`).deadLettered).toBe(0);
    } finally {
      await Promise.all([sender.close(), receiver.close(), dlq.close()]);
    }
  });

  topicTest(
    'scheduled on a topic: every subscription gets it at its time; cancelled, none does',
    async () => {
      const { topic, subs } = newTopic();
      const sender = client.createSender(topic);
      const receivers = subs.map((s) =>
        client.createReceiver(topic, s, { receiveMode: 'receiveAndDelete' }),
      );
      try {
        const at = new Date(Date.now() + 1500);
        await sender.scheduleMessages({ body: 'later', messageId: 'later-1' }, at);
        const [cancelled] = await sender.scheduleMessages({ body: 'never' }, at);
        await sender.cancelScheduledMessages(cancelled!);
        expect(target.standIn?.stats(`${topic}/Subscriptions/siem`)).toMatchObject({
          scheduled: 1,
        });
        for (const receiver of receivers) {
          const got = await receive(receiver, 1, 3000);
          expect(got.map((m): unknown => m.body)).toEqual(['later']);
          expect(got[0]?.enqueuedTimeUtc?.getTime()).toBeGreaterThanOrEqual(at.getTime() - 50);
          expect(await receive(receiver, 1, 300)).toHaveLength(0);
        }
      } finally {
        await Promise.all([sender.close(), ...receivers.map((r) => r.close())]);
      }
    },
  );

  topicTest(
    'a disabled topic refuses messages with MessagingEntityDisabled until it is active again',
    async () => {
      const { topic } = newTopic();
      const sender = client.createSender(topic);
      const receiver = client.createReceiver(topic, 'hr-itsm', { receiveMode: 'receiveAndDelete' });
      try {
        target.standIn?.setTopicStatus(topic, 'SendDisabled');
        await expectErrorCode(sender.sendMessages({ body: 'lost?' }), 'MessagingEntityDisabled');
        target.standIn?.setTopicStatus(topic, 'Active');
        await sender.sendMessages({ body: 'back' });
        const got = await receive(receiver, 2, 1000);
        expect(got.map((m): unknown => m.body)).toEqual(['back']);
      } finally {
        await Promise.all([sender.close(), receiver.close()]);
      }
    },
  );

  topicTest(
    'wrong addresses fail: receive from a topic, send to a subscription, unknown subscription',
    async () => {
      const { topic } = newTopic();
      const fromTopic = client.createReceiver(topic);
      const toSubscription = client.createSender(`${topic}/Subscriptions/hr-itsm`);
      const unknown = client.createReceiver(topic, 'nobody');
      try {
        await expect(fromTopic.receiveMessages(1, { maxWaitTimeInMs: 500 })).rejects.toThrow(
          /is a topic/,
        );
        await expect(toSubscription.sendMessages({ body: 'x' })).rejects.toThrow(
          /is a subscription/,
        );
        await expectErrorCode(
          unknown.receiveMessages(1, { maxWaitTimeInMs: 500 }),
          'MessagingEntityNotFound',
        );
        expect(target.standIn?.topicStats(topic).accepted).toBe(0);
      } finally {
        await Promise.all([fromTopic.close(), toSubscription.close(), unknown.close()]);
      }
    },
  );
});
