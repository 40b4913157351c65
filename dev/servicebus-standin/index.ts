/**
 * Local AMQP 1.0 stand-in for Azure Service Bus queues and topics, good enough for the real
 * `@azure/service-bus` SDK (7.9.x): send (single and batch), peek-lock and receive-and-delete
 * receivers, complete / abandon / dead-letter, dead-letter queues, scheduling, lock renewal and
 * expiry, peek, and duplicate detection; topics copy each message to every subscription
 * (`createReceiver(topic, subscription)`). Not a full emulator: no subscription filters or rules,
 * sessions, deferral, transactions, TTL expiry or auto-forwarding.
 *
 * Differences from Azure worth knowing: every dead-lettered message carries
 * `x-opt-deadletter-source` (Azure sets `deadLetterSource` only on messages auto-forwarded out of
 * a dead-letter queue), and all state lives in memory.
 */
import { Broker } from './broker';
import type { DeadLetteredMessage, QueueOptions, QueueStats } from './queue';
import type { TopicOptions, TopicStats, TopicStatus } from './topic';

export type { DeadLetteredMessage, QueueOptions, QueueStats } from './queue';
export type { SubscriptionOptions, TopicOptions, TopicStats, TopicStatus } from './topic';
export { subscriptionPath } from './topic';
export { MAX_MESSAGE_SIZE } from './broker';

export interface ServiceBusStandInOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  queues: QueueOptions[];
  /** Topics, each with its subscriptions. */
  topics?: TopicOptions[];
}

export interface ServiceBusStandIn {
  /** `Endpoint=sb://HOST:PORT;SharedAccessKeyName=...;SharedAccessKey=...;UseDevelopmentEmulator=true;` */
  connectionString: string;
  port: number;
  createQueue(options: QueueOptions): void;
  createTopic(options: TopicOptions): void;
  /** A queue, or a subscription by its path `<topic>/Subscriptions/<name>` (subscriptionPath). */
  stats(queue: string): QueueStats;
  deadLetters(queue: string): DeadLetteredMessage[];
  topicStats(topic: string): TopicStats;
  /** Disables sending to a topic (MessagingEntityDisabled) or makes it Active again. */
  setTopicStatus(topic: string, status: TopicStatus): void;
  /** Closes every connection and the listener. */
  stop(): Promise<void>;
}

export async function startServiceBusStandIn(
  options: ServiceBusStandInOptions,
): Promise<ServiceBusStandIn> {
  const host = options.host ?? '127.0.0.1';
  const broker = new Broker(options.queues, options.topics ?? []);
  const port = await broker.listen(options.port ?? 0, host);
  const endpointHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    connectionString:
      `Endpoint=sb://${endpointHost}:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
      'SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;',
    port,
    createQueue: (queue) => broker.createQueue(queue),
    createTopic: (topic) => broker.createTopic(topic),
    topicStats: (topic) => broker.getTopic(topic).stats(),
    setTopicStatus: (topic, status) => {
      broker.getTopic(topic).status = status;
    },
    stats: (queue) => broker.getQueue(queue).stats(),
    deadLetters: (queue) => broker.getQueue(queue).deadLetters(),
    stop: () => broker.stop(),
  };
}
