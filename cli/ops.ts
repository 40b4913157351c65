import { DefaultAzureCredential } from '@azure/identity';
import {
  ServiceBusClient,
  type ServiceBusMessage,
  type ServiceBusReceivedMessage,
} from '@azure/service-bus';
import { createHash, randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import type { AppConfig } from '../shared/config';
import { kindOfType, parseEvent, type EventKind } from '../shared/events';
import { MessageProperties } from '../shared/messaging';
import type { AuditLog } from '../shared/ports';
import { translateServiceBusError } from '../shared/servicebus/serviceBusScheduler';
import type { CsvRow } from './csv';

/** Ops commands reach Service Bus as the person running them, or with a local connection string. */
export function opsServiceBusClient(config: AppConfig): ServiceBusClient {
  const { connectionString, fullyQualifiedNamespace } = config.serviceBus;
  if (connectionString !== undefined) return new ServiceBusClient(connectionString);
  if (fullyQualifiedNamespace === undefined) {
    throw new Error(
      'Set ServiceBusConnection__fullyQualifiedNamespace (signs in with DefaultAzureCredential) or ServiceBusConnection (a local connection string).',
    );
  }
  return new ServiceBusClient(fullyQualifiedNamespace, new DefaultAzureCredential());
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
}

function eventFields(body: unknown): { eventId?: string; user?: string } {
  let value = body;
  if (Buffer.isBuffer(value)) value = value.toString('utf8');
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      return {};
    }
  }
  if (typeof value !== 'object' || value === null) return {};
  const record = value as { id?: unknown; data?: { user?: unknown } };
  return {
    ...(typeof record.id === 'string' ? { eventId: record.id } : {}),
    ...(typeof record.data?.user === 'string' ? { user: record.data.user } : {}),
  };
}

export async function summarize(
  message: ServiceBusReceivedMessage,
  audit: AuditLog,
): Promise<DeadLetterSummary> {
  const { eventId, user } = eventFields(message.body);
  const record =
    eventId === undefined ? undefined : await audit.get(eventId).catch(() => undefined);
  return {
    sequenceNumber: message.sequenceNumber?.toString() ?? '',
    messageId: String(message.messageId ?? ''),
    reason: message.deadLetterReason ?? '',
    description: message.deadLetterErrorDescription ?? '',
    ...(eventId === undefined ? {} : { eventId }),
    ...(user === undefined ? {} : { user }),
    deliveryCount: message.deliveryCount ?? 0,
    ...(message.enqueuedTimeUtc ? { enqueuedTime: message.enqueuedTimeUtc.toISOString() } : {}),
    ...(record?.errorCode
      ? { lastAuditedError: `${record.errorCode}: ${record.errorMessage ?? ''}` }
      : {}),
  };
}

/** Every dead-lettered message of a queue, peeked (nothing is locked or changed). */
export async function listDeadLetters(
  client: ServiceBusClient,
  queue: string,
  audit: AuditLog,
  max = 10_000,
): Promise<DeadLetterSummary[]> {
  const receiver = client.createReceiver(queue, { subQueueType: 'deadLetter' });
  const summaries: DeadLetterSummary[] = [];
  try {
    let from: ServiceBusReceivedMessage['sequenceNumber'];
    while (summaries.length < max) {
      const batch = await receiver.peekMessages(
        Math.min(250, max - summaries.length),
        from === undefined ? {} : { fromSequenceNumber: from.add(1) },
      );
      if (batch.length === 0) break;
      for (const message of batch) summaries.push(await summarize(message, audit));
      from = batch[batch.length - 1]?.sequenceNumber;
      if (from === undefined) break;
    }
  } catch (error) {
    throw translateServiceBusError(`read the dead-letter queue of ${queue}`, error);
  } finally {
    await receiver.close();
  }
  return summaries;
}

export interface ReplayFilter {
  reason?: string;
  eventId?: string;
  since?: Date;
  max: number;
  ratePerSecond: number;
  dryRun: boolean;
}

export interface ReplayResult {
  queue: string;
  replayed: DeadLetterSummary[];
  skipped: number;
  failed: Array<{ sequenceNumber: string; error: string }>;
  dryRun: boolean;
}

function matches(message: ServiceBusReceivedMessage, filter: ReplayFilter): boolean {
  if (filter.reason !== undefined && message.deadLetterReason !== filter.reason) return false;
  if (
    filter.since !== undefined &&
    (message.enqueuedTimeUtc?.getTime() ?? 0) < filter.since.getTime()
  )
    return false;
  if (filter.eventId !== undefined && eventFields(message.body).eventId !== filter.eventId)
    return false;
  return true;
}

/** A fresh copy for the main queue: new MessageId, attempt history reset, replay metadata added. */
export function replayCopy(
  message: ServiceBusReceivedMessage,
  by: string,
  at: Date,
): ServiceBusMessage {
  const properties: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(message.applicationProperties ?? {})) {
    // A replay starts a new life: attempts count from 1 again, and retry copies must derive their
    // ids from the replay's own MessageId (ids from the first life may still sit in the
    // duplicate-detection window, which would silently drop them).
    if (key === MessageProperties.attempt || key === MessageProperties.originalMessageId) continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      properties[key] = value;
  }
  properties[MessageProperties.replayedBy] = by;
  properties[MessageProperties.replayedAt] = at.toISOString();
  properties[MessageProperties.replayOf] = String(message.messageId ?? '');
  return {
    body: message.body as unknown,
    messageId: `replay-${randomUUID()}`,
    contentType: message.contentType ?? 'application/json',
    applicationProperties: properties,
    ...(message.subject === undefined ? {} : { subject: message.subject }),
  };
}

export function operator(): string {
  try {
    return process.env.OFFBOARD_OPERATOR ?? userInfo().username;
  } catch {
    return 'unknown';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Moves matching dead-lettered messages back onto their queue. Each copy is sent before the
 * dead-lettered original is completed, so a crash in between leaves a duplicate (which the audit
 * absorbs), never a loss.
 */
export async function replayDeadLetters(
  client: ServiceBusClient,
  queue: string,
  audit: AuditLog,
  filter: ReplayFilter,
  progress: (done: number) => void = () => undefined,
): Promise<ReplayResult> {
  const result: ReplayResult = {
    queue,
    replayed: [],
    skipped: 0,
    failed: [],
    dryRun: filter.dryRun,
  };
  const by = operator();
  if (filter.dryRun) {
    const all = await listDeadLettersRaw(client, queue);
    for (const message of all) {
      if (result.replayed.length >= filter.max) break;
      if (matches(message, filter)) result.replayed.push(await summarize(message, audit));
      else result.skipped++;
    }
    return result;
  }
  const receiver = client.createReceiver(queue, {
    subQueueType: 'deadLetter',
    receiveMode: 'peekLock',
  });
  const sender = client.createSender(queue);
  const held: ServiceBusReceivedMessage[] = [];
  const seen = new Set<string>();
  const interval = filter.ratePerSecond > 0 ? 1000 / filter.ratePerSecond : 0;
  try {
    while (result.replayed.length < filter.max) {
      const batch = await receiver.receiveMessages(
        Math.min(100, filter.max - result.replayed.length),
        { maxWaitTimeInMs: 2000 },
      );
      const fresh = batch.filter((m) => !seen.has(m.sequenceNumber?.toString() ?? ''));
      if (fresh.length === 0) {
        held.push(...batch);
        break;
      }
      for (const message of batch) {
        const sequence = message.sequenceNumber?.toString() ?? '';
        if (seen.has(sequence)) {
          held.push(message);
          continue;
        }
        seen.add(sequence);
        if (!matches(message, filter) || result.replayed.length >= filter.max) {
          // Not ours: keep it locked so this run does not see it again; released at the end.
          result.skipped++;
          held.push(message);
          continue;
        }
        const started = Date.now();
        try {
          await sender.sendMessages(replayCopy(message, by, new Date()));
          await receiver.completeMessage(message);
          result.replayed.push(await summarize(message, audit));
          progress(result.replayed.length);
        } catch (error) {
          result.failed.push({
            sequenceNumber: sequence,
            error: error instanceof Error ? error.message : String(error),
          });
          held.push(message);
        }
        const wait = interval - (Date.now() - started);
        if (wait > 0) await sleep(wait);
      }
    }
  } finally {
    await Promise.all(
      held.map((message) => receiver.abandonMessage(message).catch(() => undefined)),
    );
    await sender.close();
    await receiver.close();
  }
  return result;
}

async function listDeadLettersRaw(
  client: ServiceBusClient,
  queue: string,
): Promise<ServiceBusReceivedMessage[]> {
  const receiver = client.createReceiver(queue, { subQueueType: 'deadLetter' });
  const all: ServiceBusReceivedMessage[] = [];
  try {
    let from: ServiceBusReceivedMessage['sequenceNumber'];
    for (;;) {
      const batch = await receiver.peekMessages(
        250,
        from === undefined ? {} : { fromSequenceNumber: from.add(1) },
      );
      if (batch.length === 0) break;
      all.push(...batch);
      from = batch[batch.length - 1]?.sequenceNumber;
      if (from === undefined) break;
    }
  } finally {
    await receiver.close();
  }
  return all;
}

export interface EnqueuePlan {
  queue: string;
  messages: ServiceBusMessage[];
  errors: string[];
}

const BOOLEAN_COLUMNS = new Set(['disableAccount', 'resetPassword']);
const KNOWN_COLUMNS: Record<EventKind, string[]> = {
  'mfa.enabled': ['user', 'reason', 'ticket'],
  'employee.leaving': [
    'user',
    'disableAccount',
    'resetPassword',
    'effectiveAt',
    'reason',
    'ticket',
  ],
  'employee.leaving.cancelled': ['user', 'reason', 'ticket'],
};

/**
 * Turns a CSV wave into events, validating every row with the same rules the functions apply.
 * Event ids (and MessageIds) derive from the row, so sending the same file twice sends nothing new:
 * Service Bus duplicate detection drops repeats within its window, and the audit after it.
 */
export function planEnqueue(type: string, rows: CsvRow[], config: AppConfig): EnqueuePlan {
  const kind = kindOfType(type);
  const errors: string[] = [];
  if (kind === undefined)
    return {
      queue: '',
      messages: [],
      errors: [`--type ${type} is not an event type this app knows`],
    };
  const queue = kind === 'mfa.enabled' ? config.queues.mfaEnabled : config.queues.employeeLeaving;
  const [header, ...body] = rows;
  if (header === undefined) return { queue, messages: [], errors: ['the file is empty'] };
  const columns = header.fields.map((f) => f.trim());
  const allowed = KNOWN_COLUMNS[kind];
  const unknown = columns.filter((c) => !allowed.includes(c));
  if (!columns.includes('user'))
    errors.push(`line ${header.line}: the header needs a "user" column`);
  if (unknown.length > 0)
    errors.push(
      `line ${header.line}: unknown column(s) ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`,
    );
  if (errors.length > 0) return { queue, messages: [], errors };

  const messages: ServiceBusMessage[] = [];
  const seenIds = new Map<string, number>();
  for (const row of body) {
    if (row.fields.length !== columns.length) {
      errors.push(
        `line ${row.line}: ${row.fields.length} fields, the header has ${columns.length}`,
      );
      continue;
    }
    const data: Record<string, unknown> = {};
    let rowError: string | undefined;
    columns.forEach((column, i) => {
      const value = (row.fields[i] ?? '').trim();
      if (value === '') return;
      if (BOOLEAN_COLUMNS.has(column)) {
        if (value !== 'true' && value !== 'false')
          rowError = `${column} must be true or false (got "${value}")`;
        data[column] = value === 'true';
      } else {
        data[column] = value;
      }
    });
    if (rowError) {
      errors.push(`line ${row.line}: ${rowError}`);
      continue;
    }
    const id = `${kind}-${createHash('sha256')
      .update(
        [kind, textOf(data.user).toLowerCase(), textOf(data.ticket), textOf(data.effectiveAt)].join(
          '\u0000',
        ),
      )
      .digest('hex')
      .slice(0, 32)}`;
    const event = {
      specversion: '1.0',
      id,
      source: '/ops/offboard-cli',
      type,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data,
    };
    try {
      parseEvent(event, [kind]);
    } catch (error) {
      errors.push(`line ${row.line}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const firstLine = seenIds.get(id);
    if (firstLine !== undefined) {
      errors.push(`line ${row.line}: the same user as line ${firstLine}`);
      continue;
    }
    seenIds.set(id, row.line);
    messages.push({
      body: event,
      messageId: id,
      contentType: 'application/json',
      applicationProperties: { [MessageProperties.enqueuedBy]: operator() },
    });
  }
  return { queue, messages, errors };
}

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

export async function sendPlan(
  client: ServiceBusClient,
  plan: EnqueuePlan,
  ratePerSecond: number,
  progress: (sent: number) => void = () => undefined,
): Promise<number> {
  const sender = client.createSender(plan.queue);
  let sent = 0;
  try {
    // Batches sized to the rate (at most 100), one batch a second; --rate 0 sends as fast as it can.
    const chunk = Math.min(100, ratePerSecond > 0 ? Math.max(1, Math.floor(ratePerSecond)) : 100);
    for (let i = 0; i < plan.messages.length; i += chunk) {
      const started = Date.now();
      const slice = plan.messages.slice(i, i + chunk);
      await sender.sendMessages(slice);
      sent += slice.length;
      progress(sent);
      const wait =
        ratePerSecond > 0 ? (slice.length / ratePerSecond) * 1000 - (Date.now() - started) : 0;
      if (wait > 0 && sent < plan.messages.length) await sleep(wait);
    }
  } catch (error) {
    throw translateServiceBusError(
      `send to ${plan.queue} (${sent} of ${plan.messages.length} sent)`,
      error,
    );
  } finally {
    await sender.close();
  }
  return sent;
}
