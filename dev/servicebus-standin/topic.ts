/**
 * In-memory topic model of the Service Bus stand-in: a topic takes messages (with its own duplicate
 * detection and sequence numbers) and gives each of its subscriptions a copy. A subscription is a
 * Queue named `<topic>/Subscriptions/<name>`, the path the SDK attaches to
 * (`createReceiver(topic, subscription)`), so receiving, settlement, its dead-letter queue, peek
 * and lock renewal work as on a queue. No filters or rules: every subscription takes every message.
 */
import type { Entity, QueueOptions } from './queue';
import { DuplicateDetection, Queue, counter } from './queue';

/** A subscription's receive-side settings (as on a queue). */
export type SubscriptionOptions = Omit<QueueOptions, 'duplicateDetectionWindowMs'>;

export interface TopicOptions {
  name: string;
  /** Duplicate detection history window on the topic; 0 (default) turns it off. */
  duplicateDetectionWindowMs?: number;
  subscriptions: SubscriptionOptions[];
}

/**
 * Active, or not taking messages (`SendDisabled`, `Disabled`: sending fails with
 * MessagingEntityDisabled, as on an entity an operator disabled). Receiving is not affected here.
 */
export type TopicStatus = 'Active' | 'SendDisabled' | 'Disabled';

export interface TopicStats {
  /** Messages accepted (duplicates not counted). */
  accepted: number;
  duplicatesDropped: number;
  subscriptions: string[];
}

export const SUBSCRIPTIONS_SEGMENT = 'Subscriptions';

/** The entity path of a subscription, as the SDK builds it. */
export function subscriptionPath(topic: string, subscription: string): string {
  return `${topic}/${SUBSCRIPTIONS_SEGMENT}/${subscription}`;
}

export class Topic {
  readonly name: string;
  readonly subscriptions: Queue[];
  status: TopicStatus = 'Active';
  accepted = 0;
  private readonly duplicates: DuplicateDetection;
  private readonly sequence = counter();

  constructor(options: TopicOptions, onAvailable: (entity: Entity) => void) {
    this.name = options.name;
    if (!this.name || this.name.includes('/')) throw new Error(`Invalid topic name '${this.name}'`);
    this.duplicates = new DuplicateDetection(options.duplicateDetectionWindowMs ?? 0);
    const names = new Set<string>();
    this.subscriptions = options.subscriptions.map((subscription) => {
      const key = subscription.name.toLowerCase();
      if (!subscription.name || subscription.name.includes('/') || names.has(key))
        throw new Error(
          `Invalid or repeated subscription '${subscription.name}' on '${this.name}'`,
        );
      names.add(key);
      return new Queue(
        { ...subscription, name: subscriptionPath(this.name, subscription.name) },
        onAvailable,
        { topic: this.name, sequence: this.sequence },
      );
    });
  }

  get sendable(): boolean {
    return this.status === 'Active';
  }

  /** Duplicate detection on the topic: a repeat within the window reaches no subscription. */
  isDuplicate(messageId: string | undefined): boolean {
    return this.duplicates.isDuplicate(messageId);
  }

  allocateSequenceNumber(): number {
    return this.sequence();
  }

  /** Cancels a scheduled message in every subscription; false if none held it. */
  cancelScheduled(sequenceNumber: number): boolean {
    let found = false;
    for (const subscription of this.subscriptions)
      if (subscription.main.cancelScheduled(sequenceNumber)) found = true;
    return found;
  }

  stats(): TopicStats {
    return {
      accepted: this.accepted,
      duplicatesDropped: this.duplicates.dropped,
      subscriptions: this.subscriptions.map((s) => s.name),
    };
  }

  clearTimers(): void {
    for (const subscription of this.subscriptions) subscription.clearTimers();
  }
}
