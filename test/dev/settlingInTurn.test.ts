/**
 * Settlement on one receiver with the real SDK and the Service Bus stand-in: why the local runner
 * settles in turn (see settlingInTurn in dev/localRunner.ts).
 */
import type { ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import { ServiceBusClient } from '@azure/service-bus';
import { settlingInTurn } from '../../dev/localRunner';
import type { ServiceBusTarget } from './servicebus-target';
import { startServiceBusTarget } from './servicebus-target';

jest.setTimeout(30_000);

let target: ServiceBusTarget;
let client: ServiceBusClient;

beforeAll(async () => {
  target = await startServiceBusTarget();
  client = new ServiceBusClient(target.connectionString);
});

afterAll(async () => {
  await client?.close();
  await target?.stop();
});

/** Two messages on a fresh queue, received in one batch (consecutive deliveries on one link). */
async function receiveTwo(): Promise<{
  receiver: ServiceBusReceiver;
  first: ServiceBusReceivedMessage;
  second: ServiceBusReceivedMessage;
}> {
  const queue = await target.queue();
  const sender = client.createSender(queue);
  await sender.sendMessages([
    { body: 'to complete', messageId: 'first' },
    { body: 'to abandon', messageId: 'second' },
  ]);
  await sender.close();
  const receiver = client.createReceiver(queue);
  const received: ServiceBusReceivedMessage[] = [];
  while (received.length < 2)
    received.push(
      ...(await receiver.receiveMessages(2 - received.length, { maxWaitTimeInMs: 3000 })),
    );
  const [first, second] = received;
  if (first?.messageId !== 'first' || second?.messageId !== 'second')
    throw new Error('expected the two messages in order');
  return { receiver, first, second };
}

/** What is on the queue again within the wait, by message id and delivery count. */
async function redelivered(receiver: ServiceBusReceiver): Promise<string[]> {
  const messages = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1500 });
  return messages.map((m) => `${String(m.messageId)}:${m.deliveryCount ?? 0}`);
}

it('the SDK alone sends an abandon settled in the same tick as a complete as a complete (rhea merges them)', async () => {
  // If this starts failing, rhea compares outcomes again: settlingInTurn may go.
  const { receiver, first, second } = await receiveTwo();
  await Promise.all([receiver.completeMessage(first), receiver.abandonMessage(second)]);
  expect(await redelivered(receiver)).toEqual([]);
  await receiver.close();
});

it('settling in turn keeps each outcome: the abandoned message comes back, the completed one does not', async () => {
  const { receiver, first, second } = await receiveTwo();
  const settle = settlingInTurn(receiver);
  await Promise.all([settle.complete(first), settle.abandon(second)]);
  expect(await redelivered(receiver)).toEqual(['second:1']);
  await receiver.close();
});

it('settling in turn goes on after a settlement fails', async () => {
  const { receiver, first, second } = await receiveTwo();
  const settle = settlingInTurn(receiver);
  await settle.complete(first);
  const results = await Promise.allSettled([settle.complete(first), settle.abandon(second)]);
  expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
  expect(await redelivered(receiver)).toEqual(['second:1']);
  await receiver.close();
});
