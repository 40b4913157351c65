import type {
  ServiceBusClient,
  ServiceBusMessage,
  ServiceBusReceivedMessage,
} from '@azure/service-bus';
import { stableId } from '../shared/core/eventIdentity';
import { decodeEvent, eventMessage, salvageEventId } from '../shared/core/events';
import { AppMessageIdPrefixes, MessageProperties } from '../shared/core/messaging';
import type { AuditLog, PolicyConfig, TimelineStore } from '../shared/core/ports';
import { describeVerdict, replayVerdictOf, type ReplayVerdict } from '../shared/core/replayVerdict';
import type { RouteName } from '../shared/core/routes';
import { translateServiceBusError } from '../shared/adapters/serviceBusScheduler';
import { lastAuditedError } from './auditLookup';
import { pacedFinish, pacedSlot } from '../shared/pacing/waveSchedule';
import { operator } from './io';

/** What the dead-letter commands need of a Service Bus client (a test can wrap one). */
export type DeadLetterClient = Pick<ServiceBusClient, 'createReceiver' | 'createSender'>;

/** What the dead-letter commands read besides the queue: the audit and the person timelines. */
export interface DeadLetterReads {
  audit: AuditLog;
  timelines: TimelineStore;
  policy: PolicyConfig;
  /** The route of the queue (which event kinds it takes). */
  route: RouteName;
}

export interface DeadLetterSummary {
  sequenceNumber: string;
  messageId: string;
  reason: string;
  description: string;
  eventId?: string;
  user?: string;
  deliveryCount: number;
  enqueuedTime?: string;
  lastAuditedError?: string;
  /** What the app will decide when the message comes back, and how the commands say it. */
  verdict: ReplayVerdict & { text: string };
}

/** The body of a dead-lettered message in its content mode (structured or binary), as the functions read it. */
function eventBody(message: ServiceBusReceivedMessage): unknown {
  return eventMessage({
    body: message.body,
    contentType: message.contentType,
    properties: message.applicationProperties ?? {},
  }).body;
}

/**
 * The event id and user of a dead-lettered message, read in its content mode (structured or
 * binary) as the functions read it; dead letters may be anything, so nothing here throws.
 */
function eventFields(message: ServiceBusReceivedMessage): { eventId?: string; user?: string } {
  const body = eventBody(message);
  let eventId: string | undefined;
  let user: unknown;
  try {
    const event = decodeEvent(body);
    // Any string: dead letters are where bad ids end up, and the table escapes them.
    eventId = typeof event.id === 'string' ? event.id : undefined;
    const { data } = event;
    user = typeof data === 'object' && data !== null && 'user' in data ? data.user : undefined;
  } catch {
    // Not a readable event (a binary-mode body that is not JSON): its id, if it has a usable one.
    eventId = salvageEventId(body);
  }
  return {
    ...(eventId === undefined ? {} : { eventId }),
    ...(typeof user === 'string' ? { user } : {}),
  };
}

export async function summarize(
  message: ServiceBusReceivedMessage,
  reads: DeadLetterReads,
): Promise<DeadLetterSummary> {
  const { eventId, user } = eventFields(message);
  const audited = eventId === undefined ? undefined : await lastAuditedError(reads.audit, eventId);
  const enqueuedTime = message.enqueuedTimeUtc?.toISOString();
  const verdict = await replayVerdictOf(
    reads,
    { body: eventBody(message), route: reads.route },
    new Date(),
  );
  return {
    sequenceNumber: message.sequenceNumber?.toString() ?? '',
    messageId: String(message.messageId ?? ''),
    reason: message.deadLetterReason ?? '',
    description: message.deadLetterErrorDescription ?? '',
    ...(eventId === undefined ? {} : { eventId }),
    ...(user === undefined ? {} : { user }),
    deliveryCount: message.deliveryCount ?? 0,
    ...(enqueuedTime === undefined ? {} : { enqueuedTime }),
    ...(audited === undefined ? {} : { lastAuditedError: audited }),
    verdict: { ...verdict, text: describeVerdict(verdict) },
  };
}

/** Up to `max` dead-lettered messages of a queue, peeked: nothing is locked or changed. */
async function peekDeadLetters(
  client: DeadLetterClient,
  queue: string,
  max: number,
): Promise<ServiceBusReceivedMessage[]> {
  const receiver = client.createReceiver(queue, {
    subQueueType: 'deadLetter',
    skipConvertingDate: true,
  });
  const messages: ServiceBusReceivedMessage[] = [];
  try {
    let from: ServiceBusReceivedMessage['sequenceNumber'];
    while (messages.length < max) {
      const batch = await receiver.peekMessages(
        Math.min(250, max - messages.length),
        from === undefined ? {} : { fromSequenceNumber: from.add(1) },
      );
      if (batch.length === 0) break;
      messages.push(...batch);
      from = batch[batch.length - 1]?.sequenceNumber;
      if (from === undefined) break;
    }
  } catch (error) {
    throw translateServiceBusError(`read the dead-letter queue of ${queue}`, error);
  } finally {
    await receiver.close();
  }
  return messages;
}

export async function listDeadLetters(
  client: DeadLetterClient,
  queue: string,
  reads: DeadLetterReads,
  max = 10_000,
): Promise<DeadLetterSummary[]> {
  const messages = await peekDeadLetters(client, queue, max);
  const summaries: DeadLetterSummary[] = [];
  for (const message of messages) summaries.push(await summarize(message, reads));
  return summaries;
}

export interface ReplayFilter {
  reason?: string;
  eventId?: string;
  since?: Date;
  max: number;
  ratePerSecond: number;
  dryRun: boolean;
  /** Replay messages a later HR intent superseded too (the app audits them superseded). */
  includeSuperseded?: boolean;
}

export interface ReplayResult {
  queue: string;
  replayed: DeadLetterSummary[];
  skipped: number;
  /** Matching messages left in the dead-letter queue: superseded (without includeSuperseded). */
  superseded: DeadLetterSummary[];
  failed: Array<{ sequenceNumber: string; error: string }>;
  dryRun: boolean;
  /** Paced replays: the copies' rate, and when the last of them can have been processed. */
  pacing?: { eventsPerSecond: number; finishesAt: string };
}

function matches(message: ServiceBusReceivedMessage, filter: ReplayFilter): boolean {
  if (filter.reason !== undefined && message.deadLetterReason !== filter.reason) return false;
  if (
    filter.since !== undefined &&
    (message.enqueuedTimeUtc?.getTime() ?? 0) < filter.since.getTime()
  )
    return false;
  if (filter.eventId !== undefined && eventFields(message).eventId !== filter.eventId) return false;
  return true;
}

/**
 * The copy's MessageId derives from the dead-lettered message (its sequence number, unique in the
 * queue, and its MessageId): a re-run after a crash between sending the copy and completing the
 * dead letter sends the same id, which Service Bus duplicate detection drops. A message that is
 * dead-lettered again has a new sequence number, so its next replay is a new message.
 */
export function replayMessageId(message: ServiceBusReceivedMessage): string {
  const digest = stableId(String(message.messageId ?? '')).slice(0, 24);
  return `${AppMessageIdPrefixes.replay}${message.sequenceNumber?.toString() ?? 'unknown'}-${digest}`;
}

/** A copy for the main queue: attempt history reset, replay metadata added. */
export function replayCopy(
  message: ServiceBusReceivedMessage,
  by: string,
  at: Date,
): ServiceBusMessage {
  const properties: Record<string, string | number | boolean | Date> = {};
  for (const [key, value] of Object.entries(message.applicationProperties ?? {})) {
    // A replay starts a new life: attempts count from 1 again, and retry copies must derive their
    // ids from the replay's own MessageId (ids from the first life may still sit in the
    // duplicate-detection window, which would silently drop them).
    if (
      key === MessageProperties.attempt ||
      key === MessageProperties.originalMessageId ||
      key === MessageProperties.claimHandover
    )
      continue;
    if (
      typeof value === 'string' ||
      typeof value === 'number' ||
      typeof value === 'boolean' ||
      value instanceof Date
    )
      properties[key] = value;
  }
  properties[MessageProperties.replayedBy] = by;
  properties[MessageProperties.replayedAt] = at.toISOString();
  properties[MessageProperties.replayOf] = String(message.messageId ?? '');
  return {
    body: message.body as unknown,
    messageId: replayMessageId(message),
    contentType: message.contentType ?? 'application/json',
    applicationProperties: properties,
    ...(message.subject === undefined ? {} : { subject: message.subject }),
  };
}

/** Whether a replay leaves this message where it is: a later HR intent superseded it. */
function leftSuperseded(summary: DeadLetterSummary, filter: ReplayFilter): boolean {
  return summary.verdict.kind === 'superseded' && filter.includeSuperseded !== true;
}

function emptyResult(queue: string, dryRun: boolean): ReplayResult {
  return { queue, replayed: [], skipped: 0, superseded: [], failed: [], dryRun };
}

async function dryRunReplay(
  client: DeadLetterClient,
  queue: string,
  reads: DeadLetterReads,
  filter: ReplayFilter,
): Promise<ReplayResult> {
  const result = emptyResult(queue, true);
  for (const message of await peekDeadLetters(client, queue, Number.MAX_SAFE_INTEGER)) {
    if (result.replayed.length >= filter.max || !matches(message, filter)) {
      result.skipped++;
      continue;
    }
    const summary = await summarize(message, reads);
    (leftSuperseded(summary, filter) ? result.superseded : result.replayed).push(summary);
  }
  return result;
}

/**
 * Moves matching dead-lettered messages back onto their queue. Each copy is sent before the
 * dead-lettered original is completed, so a crash in between never loses an event; the copy's
 * deterministic MessageId (replayMessageId) makes the re-run's second send a dropped duplicate.
 * A paced replay (`ratePerSecond` > 0) schedules the copies on Service Bus at that rate, as
 * `offboard enqueue` does a wave, so the command finishes in seconds however many there are.
 */
export async function replayDeadLetters(
  client: DeadLetterClient,
  queue: string,
  reads: DeadLetterReads,
  filter: ReplayFilter,
  progress: (done: number) => void = () => undefined,
): Promise<ReplayResult> {
  if (filter.dryRun) return dryRunReplay(client, queue, reads, filter);
  const result = emptyResult(queue, false);
  const by = operator();
  const receiver = client.createReceiver(queue, {
    subQueueType: 'deadLetter',
    receiveMode: 'peekLock',
    // A binary-mode `cloudEvents:time` (AMQP timestamp) is copied as a date, not as a number.
    skipConvertingDate: true,
  });
  const sender = client.createSender(queue);
  const held: ServiceBusReceivedMessage[] = [];
  const seen = new Set<string>();
  const pace =
    filter.ratePerSecond > 0
      ? { eventsPerSecond: filter.ratePerSecond, start: new Date() }
      : undefined;
  try {
    while (result.replayed.length < filter.max) {
      const batch = await receiver.receiveMessages(
        Math.min(100, filter.max - result.replayed.length),
        { maxWaitTimeInMs: 2000 },
      );
      const fresh = batch.filter((m) => !seen.has(m.sequenceNumber?.toString() ?? ''));
      held.push(...batch.filter((m) => !fresh.includes(m)));
      if (fresh.length === 0) break;
      for (const message of fresh) {
        const sequence = message.sequenceNumber?.toString() ?? '';
        seen.add(sequence);
        if (!matches(message, filter) || result.replayed.length >= filter.max) {
          // Not ours: keep it locked so this run does not see it again; released at the end.
          result.skipped++;
          held.push(message);
          continue;
        }
        const summary = await summarize(message, reads);
        if (leftSuperseded(summary, filter)) {
          // Replayed, it would only be audited superseded: it stays, and the operator is told.
          result.superseded.push(summary);
          held.push(message);
          continue;
        }
        try {
          const copy = replayCopy(message, by, new Date());
          const due = pace && pacedSlot(result.replayed.length, pace);
          if (due === undefined || due.getTime() <= Date.now() + 1000)
            await sender.sendMessages(copy);
          else await sender.scheduleMessages(copy, due);
          await receiver.completeMessage(message);
          result.replayed.push(summary);
          progress(result.replayed.length);
        } catch (error) {
          result.failed.push({
            sequenceNumber: sequence,
            error: error instanceof Error ? error.message : String(error),
          });
          held.push(message);
        }
      }
    }
  } finally {
    await Promise.all(
      held.map((message) => receiver.abandonMessage(message).catch(() => undefined)),
    );
    await sender.close();
    await receiver.close();
  }
  if (pace && result.replayed.length > 0)
    result.pacing = {
      eventsPerSecond: Math.round(pace.eventsPerSecond * 100) / 100,
      finishesAt: pacedFinish(result.replayed.length, pace).toISOString(),
    };
  return result;
}
