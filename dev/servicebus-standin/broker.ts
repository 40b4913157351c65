/**
 * AMQP 1.0 side of the Service Bus stand-in, built on rhea's server support: CBS, producer and
 * consumer links, settlement, and the `$management` request/response operations that
 * @azure/service-bus uses.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server, Socket } from 'node:net';
import type {
  AmqpError,
  Connection,
  Container,
  Delivery,
  EventContext,
  Message,
  Receiver,
  Sender,
} from 'rhea';
import {
  create_container,
  message as rheaMessage,
  string_to_uuid,
  types as rheaTypes,
  uuid_to_string,
} from 'rhea';
import type { TypedEntries } from './codec';
import {
  BATCH_MESSAGE_FORMAT,
  decodeMessage,
  encodeMessage,
  ensureMessageId,
  parseMessage,
  reorderGuidBytes,
  timeValue,
} from './codec';
import type { Entity, QueueOptions, SettleResult, StoredMessage } from './queue';
import { DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, Queue } from './queue';
import type { TopicOptions } from './topic';
import { Topic } from './topic';

/** Standard tier limit, advertised as max-message-size on producer links. */
export const MAX_MESSAGE_SIZE = 256 * 1024;

const CBS_ADDRESS = '$cbs';
const MANAGEMENT_SUFFIX = '$management';
const DEAD_LETTER_SUFFIX = '$deadletterqueue';

const Conditions = {
  notFound: 'amqp:not-found',
  notAllowed: 'amqp:not-allowed',
  notImplemented: 'amqp:not-implemented',
  messageSizeExceeded: 'amqp:link:message-size-exceeded',
  deadLetter: 'com.microsoft:dead-letter',
  entityDisabled: 'com.microsoft:entity-disabled',
  lockLost: 'com.microsoft:message-lock-lost',
  messageNotFound: 'com.microsoft:message-not-found',
  argumentError: 'com.microsoft:argument-error',
} as const;

const LOCK_LOST_DESCRIPTION =
  'The lock supplied is invalid. Either the lock expired, or the message has already been ' +
  'removed from the queue.';

/** rhea internals used for flow control; its typings do not declare them. */
interface LinkInternals {
  local: {
    attach: { snd_settle_mode?: number; rcv_settle_mode?: number; max_message_size?: number };
  };
}
interface SenderInternals extends LinkInternals {
  credit: number;
  delivery_count: number;
  _draining: boolean;
  _drained: boolean;
  _get_drain: () => boolean;
  session: { outgoing: { next_pending_delivery: number; available(): number } };
}
interface DeliveryInternals {
  remote_settled: boolean;
}
interface Described {
  described(): unknown;
}
interface OutcomeFactory {
  accepted(): Described;
  released(): Described;
  rejected(fields: { error: AmqpError }): Described;
  modified(fields: { delivery_failed?: boolean; undeliverable_here?: boolean }): Described;
}
const outcomes = rheaMessage as unknown as OutcomeFactory;

interface Consumer {
  link: Sender;
  entity: Entity;
  receiveAndDelete: boolean;
  /** Deliveries handed to rhea that may not have been transferred yet. */
  inFlight: Array<{ delivery: Delivery; lockToken?: string }>;
}

interface DeliveryInfo {
  entity: Entity;
  lockToken: string;
  handled: boolean;
}

/** Where a producer link sends: a queue, or a topic that copies to its subscriptions. */
type Destination = Queue | Topic;

type ReceiverRole =
  | { kind: 'cbs' }
  | { kind: 'management'; entity: Entity }
  | { kind: 'topic-management'; topic: Topic }
  | { kind: 'producer'; destination: Destination };

interface Reply {
  status: number;
  description?: string;
  condition?: string;
  body?: unknown;
}

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object'
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Buffer.isBuffer(value)
    ? { ...(value as Record<string, unknown>) }
    : {};
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function asArray(value: unknown): unknown[] {
  if (Array.isArray(value)) return value as unknown[];
  return value === undefined || value === null ? [] : [value];
}

/** AMQP long values arrive as numbers, or as 8-byte buffers when beyond 2^53. */
function longValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (Buffer.isBuffer(value) && value.length === 8) return Number(value.readBigInt64BE(0));
  return undefined;
}

function lockTokens(value: unknown): string[] {
  return asArray(value).map((token) =>
    Buffer.isBuffer(token) ? uuid_to_string(token) : String(token),
  );
}

/** `sb://host/queue/$DeadLetterQueue/$management` → its parts (queue names are case-insensitive). */
function parseAddress(
  address: string,
): { queue: string; deadLetter: boolean; management: boolean } | undefined {
  const path = address.replace(/^[a-z]+:\/\/[^/]+\//i, '');
  const segments = path.split('/').filter((s) => s.length > 0);
  let management = false;
  let deadLetter = false;
  if (segments[segments.length - 1]?.toLowerCase() === MANAGEMENT_SUFFIX) {
    management = true;
    segments.pop();
  }
  if (segments[segments.length - 1]?.toLowerCase() === DEAD_LETTER_SUFFIX) {
    deadLetter = true;
    segments.pop();
  }
  if (segments.length === 0) return undefined;
  return { queue: segments.join('/'), deadLetter, management };
}

export class Broker {
  private readonly container: Container;
  /** Queues, and topic subscriptions under their path `<topic>/Subscriptions/<name>`. */
  private readonly queues = new Map<string, Queue>();
  private readonly topics = new Map<string, Topic>();
  private readonly consumers = new Map<Sender, Consumer>();
  private readonly receiverRoles = new WeakMap<Receiver, ReceiverRole>();
  private readonly deliveries = new WeakMap<Delivery, DeliveryInfo>();
  private readonly connections = new Set<Connection>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  private stopped = false;
  private readonly pumping = new Set<Entity>();
  private host = '127.0.0.1';
  port = 0;

  constructor(queues: QueueOptions[], topics: TopicOptions[] = []) {
    this.container = create_container({
      id: 'servicebus-standin',
      // Abandon arrives as `modified`; rhea would otherwise report it as `released`.
      treat_modified_as_released: false,
      autoaccept: false,
    });
    const sasl = this.container.sasl_server_mechanisms as {
      enable_anonymous(): void;
      enable_plain(callback: () => boolean): void;
    };
    sasl.enable_anonymous();
    sasl.enable_plain(() => true);
    for (const options of queues) this.createQueue(options);
    for (const options of topics) this.createTopic(options);
    this.wireEvents();
  }

  async listen(port: number, host: string): Promise<number> {
    this.host = host;
    const server = this.container.listen({ port, host });
    this.server = server;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : port;
    return this.port;
  }

  createQueue(options: QueueOptions): void {
    const key = options.name.toLowerCase();
    if (this.queues.has(key) || this.topics.has(key))
      throw new Error(`Queue '${options.name}' already exists`);
    this.queues.set(key, new Queue(options, (entity) => this.pump(entity)));
  }

  createTopic(options: TopicOptions): void {
    const key = options.name.toLowerCase();
    if (this.queues.has(key) || this.topics.has(key))
      throw new Error(`Topic '${options.name}' already exists`);
    const topic = new Topic(options, (entity) => this.pump(entity));
    this.topics.set(key, topic);
    for (const subscription of topic.subscriptions)
      this.queues.set(subscription.name.toLowerCase(), subscription);
  }

  getTopic(name: string): Topic {
    const topic = this.topics.get(name.toLowerCase());
    if (!topic) throw new Error(`Unknown topic '${name}'`);
    return topic;
  }

  getQueue(name: string): Queue {
    const queue = this.queues.get(name.toLowerCase());
    if (!queue) throw new Error(`Unknown queue '${name}'`);
    return queue;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const queue of this.queues.values()) queue.clearTimers();
    for (const connection of this.connections) {
      try {
        connection.close({ condition: 'amqp:connection:forced', description: 'Stand-in stopped' });
      } catch {
        // already closing
      }
    }
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Let rhea write the close frames, then drop the sockets.
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    this.consumers.clear();
    this.connections.clear();
  }

  // ---------------------------------------------------------------- events

  private wireEvents(): void {
    const c = this.container;
    c.on('connection_open', (ctx: EventContext) => this.connections.add(ctx.connection));
    c.on('connection_close', (ctx: EventContext) => this.dropConnection(ctx.connection));
    c.on('disconnected', (ctx: EventContext) => this.dropConnection(ctx.connection));
    c.on('sender_open', (ctx: EventContext) => ctx.sender && this.onSenderOpen(ctx.sender));
    c.on('receiver_open', (ctx: EventContext) => ctx.receiver && this.onReceiverOpen(ctx.receiver));
    c.on('sender_close', (ctx: EventContext) => ctx.sender && this.dropConsumer(ctx.sender));
    c.on('session_close', (ctx: EventContext) => {
      for (const [link, consumer] of this.consumers) {
        if (consumer.link.session === ctx.session) this.dropConsumer(link);
      }
    });
    c.on('sender_flow', (ctx: EventContext) => this.onFlow(ctx.sender));
    c.on('sender_draining', (ctx: EventContext) => this.onDraining(ctx.sender));
    c.on('message', (ctx: EventContext) => this.onMessage(ctx));
    c.on('accepted', (ctx: EventContext) => this.onOutcome(ctx.delivery, 'accepted'));
    c.on('rejected', (ctx: EventContext) => this.onOutcome(ctx.delivery, 'rejected'));
    c.on('modified', (ctx: EventContext) => this.onOutcome(ctx.delivery, 'modified'));
    c.on('released', (ctx: EventContext) => this.onOutcome(ctx.delivery, 'released'));
    // Errors raised by peers (links or sessions closed with an error) must not crash the host.
    c.on('error', () => undefined);
    c.on('connection_error', () => undefined);
    c.on('protocol_error', () => undefined);
  }

  private dropConnection(connection: Connection): void {
    this.connections.delete(connection);
    for (const [link, consumer] of this.consumers) {
      if (consumer.link.connection === connection) this.dropConsumer(link);
    }
  }

  private echoTermini(link: Sender | Receiver): void {
    const internals = link as unknown as LinkInternals;
    internals.local.attach.snd_settle_mode = link.snd_settle_mode;
    internals.local.attach.rcv_settle_mode = link.rcv_settle_mode;
    const source = optionalString(field(link.source, 'address'));
    const target = optionalString(field(link.target, 'address'));
    link.set_source(source === undefined ? ({} as { address: string }) : { address: source });
    link.set_target(target === undefined ? ({} as { address: string }) : { address: target });
  }

  private entityNotFound(link: Sender | Receiver, address: string): void {
    link.close({
      condition: Conditions.notFound,
      description:
        `The messaging entity 'sb://${this.host}:${this.port}/${address}' could not be found. ` +
        'To know more visit https://aka.ms/sbResourceMgrExceptions.',
    });
  }

  private resolveEntity(address: string): Entity | undefined {
    const parsed = parseAddress(address);
    if (!parsed) return undefined;
    const queue = this.queues.get(parsed.queue.toLowerCase());
    if (!queue) return undefined;
    return parsed.deadLetter ? queue.deadLetterQueue : queue.main;
  }

  private resolveTopic(address: string): Topic | undefined {
    const parsed = parseAddress(address);
    if (!parsed || parsed.deadLetter) return undefined;
    return this.topics.get(parsed.queue.toLowerCase());
  }

  private onSenderOpen(sender: Sender): void {
    this.echoTermini(sender);
    const address = optionalString(field(sender.source, 'address')) ?? '';
    const parsed = parseAddress(address);
    // Reply links of the CBS and management request/response pairs.
    if (address === CBS_ADDRESS || parsed?.management) return;
    const topic = this.resolveTopic(address);
    if (topic) {
      sender.close({
        condition: Conditions.notAllowed,
        description: `'${topic.name}' is a topic: receive from one of its subscriptions ('${topic.name}/Subscriptions/<name>').`,
      });
      return;
    }
    const entity = this.resolveEntity(address);
    if (!entity) {
      this.entityNotFound(sender, address);
      return;
    }
    const consumer: Consumer = {
      link: sender,
      entity,
      receiveAndDelete: sender.snd_settle_mode === 1,
      inFlight: [],
    };
    this.consumers.set(sender, consumer);
    const internals = sender as unknown as SenderInternals;
    // Always answer a drain request with drain=true, even when no credit is left (rhea only
    // sets the flag while credit remains, and the SDK waits for it).
    internals._get_drain = function (this: SenderInternals): boolean {
      if (!this._draining || !this._drained) return false;
      this.delivery_count += this.credit;
      this.credit = 0;
      return true;
    };
  }

  private onReceiverOpen(receiver: Receiver): void {
    this.echoTermini(receiver);
    const address = optionalString(field(receiver.target, 'address')) ?? '';
    if (address === CBS_ADDRESS) {
      this.receiverRoles.set(receiver, { kind: 'cbs' });
      return;
    }
    const parsed = parseAddress(address);
    const topic = this.resolveTopic(address);
    if (parsed && topic) {
      this.receiverRoles.set(
        receiver,
        parsed.management
          ? { kind: 'topic-management', topic }
          : { kind: 'producer', destination: topic },
      );
      if (!parsed.management)
        (receiver as unknown as LinkInternals).local.attach.max_message_size = MAX_MESSAGE_SIZE;
      return;
    }
    const entity = this.resolveEntity(address);
    if (!parsed || !entity) {
      this.entityNotFound(receiver, address);
      return;
    }
    if (parsed.management) {
      this.receiverRoles.set(receiver, { kind: 'management', entity });
      return;
    }
    if (entity.queue.topic !== undefined) {
      receiver.close({
        condition: Conditions.notAllowed,
        description: `'${entity.queue.name}' is a subscription: send to its topic '${entity.queue.topic}'.`,
      });
      return;
    }
    if (entity.isDeadLetter) {
      receiver.close({
        condition: Conditions.notAllowed,
        description: 'Sending messages to a dead-letter queue is not allowed.',
      });
      return;
    }
    (receiver as unknown as LinkInternals).local.attach.max_message_size = MAX_MESSAGE_SIZE;
    this.receiverRoles.set(receiver, { kind: 'producer', destination: entity.queue });
  }

  private onMessage(ctx: EventContext): void {
    const { receiver, delivery } = ctx;
    if (!receiver || !delivery) return;
    const role = this.receiverRoles.get(receiver);
    if (!role) {
      delivery.reject({ condition: Conditions.notAllowed, description: 'Link is not usable' });
      return;
    }
    try {
      if (role.kind === 'producer') {
        this.onProducerMessage(role.destination, delivery, ctx.message);
        return;
      }
      const request = ctx.message;
      delivery.accept();
      if (!request) return;
      const reply =
        role.kind === 'cbs'
          ? { status: 200, description: 'OK' }
          : role.kind === 'topic-management'
            ? this.onTopicManagementRequest(role.topic, request)
            : this.onManagementRequest(role.entity, request);
      this.sendReply(receiver.connection, request, reply, role.kind === 'cbs');
    } catch (error) {
      const description = error instanceof Error ? error.message : String(error);
      if (!delivery.settled) {
        delivery.reject({ condition: 'amqp:internal-error', description });
      }
    }
  }

  // ---------------------------------------------------------------- producers

  private onProducerMessage(
    destination: Destination,
    delivery: Delivery,
    message: Message | undefined,
  ): void {
    if (destination instanceof Topic && !destination.sendable) {
      delivery.reject(this.entityDisabled(destination));
      return;
    }
    let encoded: Buffer[];
    let size: number;
    if (delivery.format === 0) {
      // rhea hands over the decoded message only; re-encoding it keeps every value.
      const buffer = rheaMessage.encode(message);
      encoded = [buffer];
      size = buffer.length;
    } else if (delivery.format === BATCH_MESSAGE_FORMAT) {
      const raw = message as unknown as Buffer;
      size = raw.length;
      const envelope = rheaMessage.decode(raw);
      const content = field(envelope.body, 'content');
      encoded = asArray(content).filter((b): b is Buffer => Buffer.isBuffer(b));
    } else {
      delivery.reject({
        condition: Conditions.notImplemented,
        description: `Message format ${delivery.format} is not supported`,
      });
      return;
    }
    if (size > MAX_MESSAGE_SIZE) {
      delivery.reject({
        condition: Conditions.messageSizeExceeded,
        description:
          `The received message (delivery-id:${delivery.id}, size:${size} bytes) exceeds the ` +
          `limit (${MAX_MESSAGE_SIZE} bytes) currently allowed on the link.`,
      });
      return;
    }
    for (const buffer of encoded) this.enqueue(destination, buffer);
    delivery.accept();
  }

  private entityDisabled(topic: Topic): AmqpError {
    return {
      condition: Conditions.entityDisabled,
      description: `Messaging entity 'sb://${this.host}:${this.port}/${topic.name}' is currently disabled (status ${topic.status}).`,
    };
  }

  /** Stores an encoded message (or drops it as a duplicate); returns its sequence number. */
  private enqueue(destination: Destination, buffer: Buffer, scheduleDefault?: number): number {
    if (destination instanceof Topic) return this.publish(destination, buffer);
    const queue = destination;
    const parts = parseMessage(buffer);
    const decoded = decodeMessage(buffer);
    const scheduledAt =
      timeValue(decoded.annotations['x-opt-scheduled-enqueue-time']) ?? scheduleDefault;
    if (queue.isDuplicate(decoded.messageId)) return queue.allocateSequenceNumber();
    let messageId = decoded.messageId;
    if (messageId === undefined) {
      // Like Service Bus, assign a MessageId when the client sent none.
      messageId = randomUUID().replace(/-/g, '');
      ensureMessageId(parts, messageId);
    }
    const message = queue.createMessage(parts, messageId);
    if (scheduledAt !== undefined && scheduledAt > Date.now()) {
      queue.main.schedule(message, scheduledAt);
    } else {
      queue.main.add(message);
    }
    return message.sequenceNumber;
  }

  /**
   * A message sent to a topic: dropped if the topic saw its MessageId within its window, else one
   * copy per subscription, all with the topic's sequence number (and scheduled alike).
   */
  private publish(topic: Topic, buffer: Buffer): number {
    const decoded = decodeMessage(buffer);
    if (topic.isDuplicate(decoded.messageId)) return topic.allocateSequenceNumber();
    const scheduledAt = timeValue(decoded.annotations['x-opt-scheduled-enqueue-time']);
    const messageId = decoded.messageId ?? randomUUID().replace(/-/g, '');
    const sequenceNumber = topic.allocateSequenceNumber();
    topic.accepted += 1;
    for (const subscription of topic.subscriptions) {
      const parts = parseMessage(buffer);
      if (decoded.messageId === undefined) ensureMessageId(parts, messageId);
      const message = subscription.createMessage(parts, messageId, sequenceNumber);
      if (scheduledAt !== undefined && scheduledAt > Date.now()) {
        subscription.main.schedule(message, scheduledAt);
      } else {
        subscription.main.add(message);
      }
    }
    return sequenceNumber;
  }

  // ---------------------------------------------------------------- consumers

  private untransferred(consumer: Consumer): number {
    const internals = consumer.link as unknown as SenderInternals;
    const next = internals.session.outgoing.next_pending_delivery;
    consumer.inFlight = consumer.inFlight.filter((f) => f.delivery.id >= next);
    return consumer.inFlight.length;
  }

  private availableCredit(consumer: Consumer): number {
    const internals = consumer.link as unknown as SenderInternals;
    if (!consumer.link.is_open() || internals.session.outgoing.available() <= 0) return 0;
    return internals.credit - this.untransferred(consumer);
  }

  private onFlow(sender: Sender | undefined): void {
    const consumer = sender && this.consumers.get(sender);
    if (consumer) this.pump(consumer.entity);
  }

  private onDraining(sender: Sender | undefined): void {
    const consumer = sender && this.consumers.get(sender);
    if (!consumer || !sender) return;
    this.pump(consumer.entity);
    sender.set_drained(true);
  }

  /** Hands available messages of an entity to its consumers, round-robin, within credit. */
  private pump(entity: Entity): void {
    if (this.stopped || this.pumping.has(entity)) return;
    this.pumping.add(entity);
    try {
      const consumers = [...this.consumers.values()].filter((c) => c.entity === entity);
      let progress = true;
      while (progress) {
        progress = false;
        for (const consumer of consumers) {
          if (this.availableCredit(consumer) <= 0) continue;
          const message = entity.nextActive();
          if (!message) return;
          this.deliver(consumer, message);
          progress = true;
        }
      }
    } finally {
      this.pumping.delete(entity);
    }
  }

  private deliveryAnnotations(message: StoredMessage): TypedEntries {
    return [
      ['x-opt-sequence-number', rheaTypes.wrap_long(message.sequenceNumber)],
      ['x-opt-enqueued-time', rheaTypes.wrap_timestamp(message.enqueuedTime)],
    ];
  }

  private deliver(consumer: Consumer, message: StoredMessage): void {
    const { entity, link } = consumer;
    const annotations = this.deliveryAnnotations(message);
    if (consumer.receiveAndDelete) {
      entity.takeForReceiveAndDelete(message);
      const payload = encodeMessage(message.parts, {
        deliveryCount: message.deliveryCount,
        annotations,
      });
      const delivery = link.send(payload, randomBytes(16), 0);
      consumer.inFlight.push({ delivery });
      return;
    }
    const lockToken = entity.lock(message);
    annotations.push(['x-opt-locked-until', rheaTypes.wrap_timestamp(message.lockedUntil ?? 0)]);
    const payload = encodeMessage(message.parts, {
      deliveryCount: message.deliveryCount,
      annotations,
    });
    // The SDK reads the 16-byte tag in .NET GUID byte order as the lock token.
    const tag = reorderGuidBytes(string_to_uuid(lockToken));
    const delivery = link.send(payload, tag, 0);
    this.deliveries.set(delivery, { entity, lockToken, handled: false });
    consumer.inFlight.push({ delivery, lockToken });
  }

  private dropConsumer(link: Sender): void {
    const consumer = this.consumers.get(link);
    if (!consumer) return;
    this.consumers.delete(link);
    // Messages locked for deliveries that never left the broker go straight back.
    this.untransferred(consumer);
    for (const { lockToken } of consumer.inFlight) {
      if (lockToken) consumer.entity.release(lockToken);
    }
    consumer.inFlight = [];
  }

  // ---------------------------------------------------------------- settlement

  private settle(delivery: Delivery, state: Described): void {
    delivery.update(true, state.described());
    // The client never settles a delivery we settled (receiver settle mode second); mark it so
    // rhea frees the slot in the session's outgoing window.
    (delivery as unknown as DeliveryInternals).remote_settled = true;
  }

  private onOutcome(
    delivery: Delivery | undefined,
    kind: 'accepted' | 'rejected' | 'modified' | 'released',
  ): void {
    if (!delivery) return;
    const info = this.deliveries.get(delivery);
    if (!info || info.handled) return;
    info.handled = true;
    const { entity, lockToken } = info;
    const state: unknown = delivery.remote_state;
    let result: SettleResult;
    let reply: Described;
    switch (kind) {
      case 'accepted':
        result = entity.complete(lockToken);
        reply = outcomes.accepted();
        break;
      case 'modified': {
        if (field(state, 'undeliverable_here') === true) {
          this.settle(
            delivery,
            outcomes.rejected({
              error: {
                condition: Conditions.notImplemented,
                description: 'Deferring messages is not supported by the stand-in',
              },
            }),
          );
          return;
        }
        result = entity.abandon(lockToken, record(field(state, 'message_annotations')));
        reply = outcomes.modified({ delivery_failed: true, undeliverable_here: false });
        break;
      }
      case 'rejected': {
        const error = field(state, 'error');
        const details = record(field(error, 'info'));
        const reason = optionalString(details[DEAD_LETTER_REASON]);
        const description = optionalString(details[DEAD_LETTER_DESCRIPTION]);
        delete details[DEAD_LETTER_REASON];
        delete details[DEAD_LETTER_DESCRIPTION];
        result = entity.deadLetter(lockToken, { reason, description, properties: details });
        // Success is reported as accepted: a rejected outcome would read as a failure.
        reply = outcomes.accepted();
        break;
      }
      case 'released':
        result = entity.release(lockToken);
        reply = outcomes.released();
        break;
    }
    if (result === 'lock-lost') {
      reply = outcomes.rejected({
        error: { condition: Conditions.lockLost, description: LOCK_LOST_DESCRIPTION },
      });
    }
    this.settle(delivery, reply);
  }

  // ---------------------------------------------------------------- request / response

  private sendReply(connection: Connection, request: Message, reply: Reply, cbs: boolean): void {
    const replyTo = optionalString(request.reply_to);
    if (replyTo === undefined) return;
    const link = connection.find_sender(
      (s: Sender) => s.name === replyTo || field(s.target, 'address') === replyTo,
    );
    if (!link) return;
    const properties: Record<string, unknown> = cbs
      ? {
          'status-code': rheaTypes.wrap_int(reply.status),
          'status-description': reply.description ?? '',
        }
      : {
          statusCode: rheaTypes.wrap_int(reply.status),
          statusDescription: reply.description ?? '',
        };
    if (reply.condition !== undefined) {
      properties.errorCondition = rheaTypes.wrap_symbol(reply.condition);
    }
    const response: Message = {
      correlation_id: request.message_id,
      to: replyTo,
      application_properties: properties,
      body: reply.body ?? null,
    };
    link.send(response);
  }

  private onManagementRequest(entity: Entity, request: Message): Reply {
    const operation = optionalString(field(request.application_properties, 'operation'));
    const body: unknown = request.body;
    switch (operation) {
      case 'com.microsoft:peek-message':
        return this.peek(entity, body);
      case 'com.microsoft:schedule-message':
        return this.schedule(entity, body);
      case 'com.microsoft:cancel-scheduled-message':
        return this.cancelScheduled(entity, body);
      case 'com.microsoft:renew-lock':
        return this.renewLock(entity, body);
      case 'com.microsoft:update-disposition':
        return this.updateDisposition(entity, body);
      default:
        return {
          status: 501,
          condition: Conditions.notImplemented,
          description: `Operation '${operation ?? ''}' is not supported by the stand-in`,
        };
    }
  }

  private peek(entity: Entity, body: unknown): Reply {
    const from = longValue(field(body, 'from-sequence-number')) ?? 1;
    const count = Number(field(body, 'message-count') ?? 1);
    const messages = entity.peek(from, count).map((message) => {
      const annotations = this.deliveryAnnotations(message);
      annotations.push([
        'x-opt-message-state',
        rheaTypes.wrap_int(message.state === 'scheduled' ? 2 : 0),
      ]);
      if (message.state === 'locked' && message.lockedUntil !== undefined) {
        annotations.push(['x-opt-locked-until', rheaTypes.wrap_timestamp(message.lockedUntil)]);
      }
      if (message.scheduledEnqueueTime !== undefined) {
        annotations.push([
          'x-opt-scheduled-enqueue-time',
          rheaTypes.wrap_timestamp(message.scheduledEnqueueTime),
        ]);
      }
      return {
        message: encodeMessage(message.parts, {
          deliveryCount: message.deliveryCount,
          annotations,
        }),
      };
    });
    if (messages.length === 0) {
      return { status: 204, description: 'No messages to peek' };
    }
    return { status: 200, description: 'OK', body: { messages } };
  }

  private schedule(entity: Entity, body: unknown): Reply {
    if (entity.isDeadLetter) {
      return {
        status: 400,
        condition: Conditions.notAllowed,
        description: 'Scheduling on a dead-letter queue is not allowed.',
      };
    }
    const sequenceNumbers: number[] = [];
    for (const item of asArray(field(body, 'messages'))) {
      const encoded = field(item, 'message');
      if (!Buffer.isBuffer(encoded)) continue;
      // Without a scheduled time the message is enqueued right away.
      sequenceNumbers.push(this.enqueue(entity.queue, encoded));
    }
    return {
      status: 200,
      description: 'OK',
      body: { 'sequence-numbers': rheaTypes.wrap_array(sequenceNumbers, 0x81, undefined) },
    };
  }

  /** A topic's management link: scheduling and cancelling (peek and the rest are per subscription). */
  private onTopicManagementRequest(topic: Topic, request: Message): Reply {
    const operation = optionalString(field(request.application_properties, 'operation'));
    const body: unknown = request.body;
    if (operation === 'com.microsoft:schedule-message') {
      if (!topic.sendable) {
        const error = this.entityDisabled(topic);
        return { status: 400, condition: error.condition, description: error.description ?? '' };
      }
      const sequenceNumbers: number[] = [];
      for (const item of asArray(field(body, 'messages'))) {
        const encoded = field(item, 'message');
        if (Buffer.isBuffer(encoded)) sequenceNumbers.push(this.enqueue(topic, encoded));
      }
      return {
        status: 200,
        description: 'OK',
        body: { 'sequence-numbers': rheaTypes.wrap_array(sequenceNumbers, 0x81, undefined) },
      };
    }
    if (operation === 'com.microsoft:cancel-scheduled-message') {
      const missing: number[] = [];
      for (const value of asArray(field(body, 'sequence-numbers'))) {
        const sequenceNumber = longValue(value);
        if (sequenceNumber === undefined || !topic.cancelScheduled(sequenceNumber))
          missing.push(sequenceNumber ?? NaN);
      }
      if (missing.length > 0)
        return {
          status: 404,
          condition: Conditions.messageNotFound,
          description: `Messages not found. Missing sequence numbers: ${missing.join(', ')}`,
        };
      return { status: 200, description: 'OK' };
    }
    return {
      status: 501,
      condition: Conditions.notImplemented,
      description: `Operation '${operation ?? ''}' on a topic is not supported by the stand-in`,
    };
  }

  private cancelScheduled(entity: Entity, body: unknown): Reply {
    const missing: number[] = [];
    for (const value of asArray(field(body, 'sequence-numbers'))) {
      const sequenceNumber = longValue(value);
      if (sequenceNumber === undefined || !entity.cancelScheduled(sequenceNumber)) {
        missing.push(sequenceNumber ?? NaN);
      }
    }
    if (missing.length > 0) {
      return {
        status: 404,
        condition: Conditions.messageNotFound,
        description: `Messages not found. Missing sequence numbers: ${missing.join(', ')}`,
      };
    }
    return { status: 200, description: 'OK' };
  }

  private renewLock(entity: Entity, body: unknown): Reply {
    const expirations: number[] = [];
    for (const token of lockTokens(field(body, 'lock-tokens'))) {
      const until = entity.renew(token);
      if (until === undefined) {
        return { status: 410, condition: Conditions.lockLost, description: LOCK_LOST_DESCRIPTION };
      }
      expirations.push(until);
    }
    return {
      status: 200,
      description: 'OK',
      body: { expirations: rheaTypes.wrap_array(expirations, 0x83, undefined) },
    };
  }

  /** Settlement through the management link (used when the receive link is gone). */
  private updateDisposition(entity: Entity, body: unknown): Reply {
    const status = optionalString(field(body, 'disposition-status'));
    const properties = record(field(body, 'properties-to-modify'));
    for (const token of lockTokens(field(body, 'lock-tokens'))) {
      let result: SettleResult;
      switch (status) {
        case 'completed':
          result = entity.complete(token);
          break;
        case 'abandoned':
          result = entity.abandon(token, properties);
          break;
        case 'suspended':
          result = entity.deadLetter(token, {
            reason: optionalString(field(body, 'deadletter-reason')),
            description: optionalString(field(body, 'deadletter-description')),
            properties,
          });
          break;
        default:
          return {
            status: 501,
            condition: Conditions.notImplemented,
            description: `Disposition '${status ?? ''}' is not supported by the stand-in`,
          };
      }
      if (result === 'lock-lost') {
        return { status: 410, condition: Conditions.lockLost, description: LOCK_LOST_DESCRIPTION };
      }
    }
    return { status: 200, description: 'OK' };
  }
}
