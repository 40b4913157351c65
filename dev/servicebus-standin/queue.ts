/**
 * In-memory queue model of the Service Bus stand-in: active, locked and scheduled messages,
 * peek-lock with expiring locks, delivery counting, dead-lettering and duplicate detection.
 * It knows nothing about AMQP links; the broker drives it and is told when messages become
 * available.
 */
import { randomUUID } from 'node:crypto';
import { types as rheaTypes } from 'rhea';
import type { MessageParts, TypedEntries } from './codec';
import { decodeParts, getEntry, setEntry } from './codec';

export interface QueueOptions {
  name: string;
  /** Deliveries before a message is dead-lettered with MaxDeliveryCountExceeded. Default 10. */
  maxDeliveryCount?: number;
  /** Peek-lock duration. Default 60000 ms. */
  lockDurationMs?: number;
  /** Duplicate detection history window; 0 (default) turns it off. */
  duplicateDetectionWindowMs?: number;
}

export interface QueueStats {
  active: number;
  locked: number;
  scheduled: number;
  deadLettered: number;
  completed: number;
  duplicatesDropped: number;
}

export interface DeadLetteredMessage {
  messageId?: string;
  reason?: string;
  description?: string;
  deliveryCount: number;
  body: unknown;
  applicationProperties: Record<string, unknown>;
}

export type MessageState = 'active' | 'locked' | 'scheduled';

export interface StoredMessage {
  sequenceNumber: number;
  enqueuedTime: number;
  scheduledEnqueueTime?: number;
  messageId?: string;
  parts: MessageParts;
  /** Deliveries that ended without settlement (abandon, lock expiry): header delivery-count. */
  deliveryCount: number;
  state: MessageState;
  lockToken?: string;
  lockedUntil?: number;
  timer?: NodeJS.Timeout;
}

export type SettleResult = 'ok' | 'lock-lost';

export const DEAD_LETTER_REASON = 'DeadLetterReason';
export const DEAD_LETTER_DESCRIPTION = 'DeadLetterErrorDescription';
export const MAX_DELIVERY_COUNT_EXCEEDED = 'MaxDeliveryCountExceeded';
/** The longest delay a Node timer keeps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One receivable entity: a queue or its dead-letter sub-queue. */
export class Entity {
  readonly messages: StoredMessage[] = [];
  private readonly locks = new Map<string, StoredMessage>();

  constructor(
    readonly queue: Queue,
    readonly isDeadLetter: boolean,
  ) {}

  count(state: MessageState): number {
    return this.messages.filter((m) => m.state === state).length;
  }

  /** Adds a message that is available now. */
  add(message: StoredMessage): void {
    message.state = 'active';
    this.messages.push(message);
    this.queue.notify(this);
  }

  schedule(message: StoredMessage, at: number): void {
    message.state = 'scheduled';
    message.scheduledEnqueueTime = at;
    this.messages.push(message);
    this.armSchedule(message, at);
  }

  /**
   * Node's timers hold at most 2^31 - 1 ms (about 24.8 days) and fire after 1 ms beyond that: a
   * leave date a month ahead would arrive at once. A later time re-arms on the way.
   */
  private armSchedule(message: StoredMessage, at: number): void {
    const wait = Math.max(0, at - Date.now());
    message.timer = setTimeout(
      () => (wait > MAX_TIMER_MS ? this.armSchedule(message, at) : this.activateScheduled(message)),
      Math.min(wait, MAX_TIMER_MS),
    );
  }

  /**
   * A scheduled message is appended as if enqueued now, with a new sequence number (the one
   * returned by scheduling is only valid while the message is scheduled).
   */
  private activateScheduled(message: StoredMessage): void {
    message.timer = undefined;
    this.remove(message);
    message.enqueuedTime = Date.now();
    message.sequenceNumber = this.queue.allocateSequenceNumber();
    this.add(message);
  }

  cancelScheduled(sequenceNumber: number): boolean {
    const message = this.messages.find(
      (m) => m.sequenceNumber === sequenceNumber && m.state === 'scheduled',
    );
    if (!message) return false;
    clearTimeout(message.timer);
    this.remove(message);
    return true;
  }

  nextActive(): StoredMessage | undefined {
    return this.messages.find((m) => m.state === 'active');
  }

  /** Locks an active message for a peek-lock delivery and returns its lock token. */
  lock(message: StoredMessage): string {
    const token = randomUUID();
    message.state = 'locked';
    message.lockToken = token;
    this.locks.set(token, message);
    this.armLock(message, Date.now() + this.queue.lockDurationMs);
    return token;
  }

  private armLock(message: StoredMessage, until: number): void {
    clearTimeout(message.timer);
    message.lockedUntil = until;
    message.timer = setTimeout(() => this.expire(message), Math.max(0, until - Date.now()));
  }

  /** The locked message for a token, if the lock is still held. */
  private held(token: string): StoredMessage | undefined {
    const message = this.locks.get(token);
    if (!message) return undefined;
    if ((message.lockedUntil ?? 0) <= Date.now()) {
      this.expire(message);
      return undefined;
    }
    return message;
  }

  lockedUntil(token: string): number | undefined {
    return this.held(token)?.lockedUntil;
  }

  private unlock(message: StoredMessage): void {
    clearTimeout(message.timer);
    message.timer = undefined;
    if (message.lockToken) this.locks.delete(message.lockToken);
    message.lockToken = undefined;
    message.lockedUntil = undefined;
  }

  private expire(message: StoredMessage): void {
    if (message.state !== 'locked') return;
    this.unlock(message);
    this.returnToQueue(message, true);
  }

  /** Puts a message back after an unsuccessful delivery, dead-lettering it at the limit. */
  private returnToQueue(message: StoredMessage, countDelivery: boolean): void {
    if (countDelivery) message.deliveryCount += 1;
    if (!this.isDeadLetter && message.deliveryCount >= this.queue.maxDeliveryCount) {
      this.remove(message);
      this.queue.deadLetter(message, {
        reason: MAX_DELIVERY_COUNT_EXCEEDED,
        description: `Message could not be consumed after ${this.queue.maxDeliveryCount} delivery attempts.`,
      });
      return;
    }
    message.state = 'active';
    this.queue.notify(this);
  }

  remove(message: StoredMessage): void {
    const index = this.messages.indexOf(message);
    if (index >= 0) this.messages.splice(index, 1);
  }

  /** Removes a message handed over in receive-and-delete mode. */
  takeForReceiveAndDelete(message: StoredMessage): void {
    this.remove(message);
    if (!this.isDeadLetter) this.queue.completedCount += 1;
  }

  complete(token: string): SettleResult {
    const message = this.held(token);
    if (!message) return 'lock-lost';
    this.unlock(message);
    this.remove(message);
    if (!this.isDeadLetter) this.queue.completedCount += 1;
    return 'ok';
  }

  abandon(token: string, propertiesToModify?: Record<string, unknown>): SettleResult {
    const message = this.held(token);
    if (!message) return 'lock-lost';
    this.unlock(message);
    applyProperties(message.parts.applicationProperties, propertiesToModify);
    this.returnToQueue(message, true);
    return 'ok';
  }

  /** Unlocks without counting a delivery (AMQP released). */
  release(token: string): SettleResult {
    const message = this.held(token);
    if (!message) return 'lock-lost';
    this.unlock(message);
    this.returnToQueue(message, false);
    return 'ok';
  }

  deadLetter(
    token: string,
    details: { reason?: string; description?: string; properties?: Record<string, unknown> },
  ): SettleResult {
    const message = this.held(token);
    if (!message) return 'lock-lost';
    this.unlock(message);
    applyProperties(message.parts.applicationProperties, details.properties);
    if (this.isDeadLetter) {
      // A dead-lettered message cannot be dead-lettered again: it just becomes available.
      this.returnToQueue(message, false);
      return 'ok';
    }
    this.remove(message);
    this.queue.deadLetter(message, details);
    return 'ok';
  }

  renew(token: string): number | undefined {
    const message = this.held(token);
    if (!message) return undefined;
    this.armLock(message, Date.now() + this.queue.lockDurationMs);
    return message.lockedUntil;
  }

  /** Messages in sequence-number order from a given number (peek). */
  peek(fromSequenceNumber: number, count: number): StoredMessage[] {
    return this.messages
      .filter((m) => m.sequenceNumber >= fromSequenceNumber)
      .sort((a, b) => a.sequenceNumber - b.sequenceNumber)
      .slice(0, count);
  }

  clearTimers(): void {
    for (const message of this.messages) {
      clearTimeout(message.timer);
      message.timer = undefined;
    }
  }
}

function applyProperties(entries: TypedEntries, properties?: Record<string, unknown>): void {
  if (!properties) return;
  for (const [key, value] of Object.entries(properties)) {
    if (value === undefined || value === null) continue;
    setEntry(entries, key, rheaTypes.wrap(value));
  }
}

/** A counter from 1: a queue's (or a topic's) sequence numbers. */
export function counter(): () => number {
  let next = 1;
  return () => next++;
}

/**
 * Duplicate detection on MessageId within a window (a queue's or a topic's); a window of 0 turns
 * it off.
 */
export class DuplicateDetection {
  dropped = 0;
  private readonly seenMessageIds = new Map<string, number>();

  constructor(private readonly windowMs: number) {}

  /** True when the id was seen within the window (the message must then be accepted and dropped). */
  isDuplicate(messageId: string | undefined, now = Date.now()): boolean {
    if (this.windowMs <= 0 || messageId === undefined) return false;
    for (const [id, seenAt] of this.seenMessageIds) {
      if (now - seenAt < this.windowMs) break; // insertion order = time order
      this.seenMessageIds.delete(id);
    }
    if (this.seenMessageIds.has(messageId)) {
      this.dropped += 1;
      return true;
    }
    this.seenMessageIds.set(messageId, now);
    return false;
  }
}

export class Queue {
  readonly name: string;
  readonly maxDeliveryCount: number;
  readonly lockDurationMs: number;
  readonly duplicateDetectionWindowMs: number;
  readonly main: Entity;
  readonly deadLetterQueue: Entity;
  completedCount = 0;
  private readonly duplicates: DuplicateDetection;
  private readonly sequence: () => number;
  /** Set on a topic's subscription: its topic (nothing is sent to a subscription directly). */
  readonly topic: string | undefined;

  /**
   * `sequence` hands out sequence numbers: a queue counts its own, a subscription takes its
   * topic's (a message has the same number in every subscription, as in Service Bus).
   */
  constructor(
    options: QueueOptions,
    private readonly onAvailable: (entity: Entity) => void,
    subscriptionOf?: { topic: string; sequence: () => number },
  ) {
    this.name = options.name;
    this.maxDeliveryCount = options.maxDeliveryCount ?? 10;
    this.lockDurationMs = options.lockDurationMs ?? 60_000;
    this.duplicateDetectionWindowMs = options.duplicateDetectionWindowMs ?? 0;
    this.duplicates = new DuplicateDetection(this.duplicateDetectionWindowMs);
    this.topic = subscriptionOf?.topic;
    this.sequence = subscriptionOf?.sequence ?? counter();
    if (!this.name || this.maxDeliveryCount < 1 || this.lockDurationMs <= 0) {
      throw new Error(`Invalid queue options for '${this.name}'`);
    }
    this.main = new Entity(this, false);
    this.deadLetterQueue = new Entity(this, true);
  }

  notify(entity: Entity): void {
    this.onAvailable(entity);
  }

  /**
   * Duplicate detection: true when the message id was seen within the window (the message must
   * then be accepted and dropped).
   */
  isDuplicate(messageId: string | undefined, now = Date.now()): boolean {
    return this.duplicates.isDuplicate(messageId, now);
  }

  get duplicatesDropped(): number {
    return this.duplicates.dropped;
  }

  allocateSequenceNumber(): number {
    return this.sequence();
  }

  /** Builds a stored message with the next sequence number (or the one its topic gave it). */
  createMessage(
    parts: MessageParts,
    messageId: string | undefined,
    sequenceNumber = this.allocateSequenceNumber(),
  ): StoredMessage {
    const message: StoredMessage = {
      sequenceNumber,
      enqueuedTime: Date.now(),
      parts,
      deliveryCount: 0,
      state: 'active',
    };
    if (messageId !== undefined) message.messageId = messageId;
    return message;
  }

  deadLetter(message: StoredMessage, details: { reason?: string; description?: string }): void {
    const { parts } = message;
    if (details.reason !== undefined) {
      setEntry(
        parts.applicationProperties,
        DEAD_LETTER_REASON,
        rheaTypes.wrap_string(details.reason),
      );
    }
    if (details.description !== undefined) {
      setEntry(
        parts.applicationProperties,
        DEAD_LETTER_DESCRIPTION,
        rheaTypes.wrap_string(details.description),
      );
    }
    setEntry(parts.annotations, 'x-opt-deadletter-source', rheaTypes.wrap_string(this.name));
    this.deadLetterQueue.add(message);
  }

  stats(): QueueStats {
    return {
      active: this.main.count('active'),
      locked: this.main.count('locked'),
      scheduled: this.main.count('scheduled'),
      deadLettered: this.deadLetterQueue.messages.length,
      completed: this.completedCount,
      duplicatesDropped: this.duplicatesDropped,
    };
  }

  deadLetters(): DeadLetteredMessage[] {
    return this.deadLetterQueue.messages.map((m) => {
      const decoded = decodeParts(m.parts, m.deliveryCount);
      const reason = getEntry(m.parts.applicationProperties, DEAD_LETTER_REASON)?.value as unknown;
      const description = getEntry(m.parts.applicationProperties, DEAD_LETTER_DESCRIPTION)
        ?.value as unknown;
      const entry: DeadLetteredMessage = {
        deliveryCount: m.deliveryCount,
        body: decoded.body,
        applicationProperties: decoded.applicationProperties,
      };
      if (m.messageId !== undefined) entry.messageId = m.messageId;
      if (typeof reason === 'string') entry.reason = reason;
      if (typeof description === 'string') entry.description = description;
      return entry;
    });
  }

  clearTimers(): void {
    this.main.clearTimers();
    this.deadLetterQueue.clearTimers();
  }
}
