/**
 * Picks the Service Bus a test talks to: the local stand-in (default), or a real namespace / the
 * official emulator when SERVICEBUS_CONNECTION_STRING is set. See servicebus-standin.test.ts for
 * the queues a real target needs.
 */
import { ServiceBusClient } from '@azure/service-bus';
import type { ServiceBusStandIn } from '../../dev/servicebus-standin/index';
import { startServiceBusStandIn } from '../../dev/servicebus-standin/index';

export type QueueKind = 'default' | 'dedup';

export interface ServiceBusTarget {
  connectionString: string;
  /** Present only when running against the stand-in (introspection such as stats()). */
  standIn?: ServiceBusStandIn;
  lockDurationMs: number;
  maxDeliveryCount: number;
  /** An empty queue for one test: a fresh stand-in queue, or the configured real queue purged. */
  queue(kind?: QueueKind): Promise<string>;
  stop(): Promise<void>;
}

const STANDIN_LOCK_MS = 1500;
const STANDIN_MAX_DELIVERY = 3;

function envNumber(name: string, fallback: number): number {
  const value = process.env[name];
  return value ? Number(value) : fallback;
}

async function purge(connectionString: string, queue: string): Promise<void> {
  const client = new ServiceBusClient(connectionString);
  try {
    for (const subQueueType of [undefined, 'deadLetter'] as const) {
      const receiver = client.createReceiver(queue, {
        receiveMode: 'receiveAndDelete',
        ...(subQueueType ? { subQueueType } : {}),
      });
      for (;;) {
        const messages = await receiver.receiveMessages(100, { maxWaitTimeInMs: 1000 });
        if (messages.length === 0) break;
      }
      await receiver.close();
    }
    // Scheduled leftovers are only reachable through peek + cancel.
    const peeker = client.createReceiver(queue);
    const scheduled = (await peeker.peekMessages(100, { fromSequenceNumber: undefined })).filter(
      (m) => m.state === 'scheduled' && m.sequenceNumber !== undefined,
    );
    await peeker.close();
    if (scheduled.length > 0) {
      const sender = client.createSender(queue);
      await sender.cancelScheduledMessages(scheduled.map((m) => m.sequenceNumber!));
      await sender.close();
    }
  } finally {
    await client.close();
  }
}

export async function startServiceBusTarget(): Promise<ServiceBusTarget> {
  const external = process.env.SERVICEBUS_CONNECTION_STRING;
  if (external) {
    const queues: Record<QueueKind, string> = {
      default: process.env.SERVICEBUS_TEST_QUEUE ?? 'standin-test',
      dedup: process.env.SERVICEBUS_TEST_DEDUP_QUEUE ?? 'standin-test-dedup',
    };
    return {
      connectionString: external,
      lockDurationMs: envNumber('SERVICEBUS_TEST_LOCK_DURATION_MS', 5000),
      maxDeliveryCount: envNumber('SERVICEBUS_TEST_MAX_DELIVERY_COUNT', 3),
      async queue(kind = 'default') {
        await purge(external, queues[kind]);
        return queues[kind];
      },
      stop: () => Promise.resolve(),
    };
  }
  const standIn = await startServiceBusStandIn({ queues: [] });
  let counter = 0;
  return {
    connectionString: standIn.connectionString,
    standIn,
    lockDurationMs: STANDIN_LOCK_MS,
    maxDeliveryCount: STANDIN_MAX_DELIVERY,
    queue(kind = 'default') {
      counter += 1;
      const name = `test-${kind}-${counter}`;
      standIn.createQueue({
        name,
        lockDurationMs: STANDIN_LOCK_MS,
        maxDeliveryCount: STANDIN_MAX_DELIVERY,
        duplicateDetectionWindowMs: kind === 'dedup' ? 60_000 : 0,
      });
      return Promise.resolve(name);
    },
    stop: () => standIn.stop(),
  };
}
