import type { ServiceBusClient, ServiceBusMessage } from '@azure/service-bus';
import { LeaverFlags, plannedActions, type LeaverFlag } from '../shared/core/actions';
import { planWaveSchedule, type WavePlan } from '../shared/pacing/waveSchedule';
import { randomBytes } from 'node:crypto';
import { eventKey, stableId } from '../shared/core/eventIdentity';
import { actionsOf } from '../shared/core/offboard';
import type { RecordKey } from '../shared/core/ports';
import { approvalTree } from '../shared/core/waveApproval';
import type { AppConfig } from '../shared/app/config';
import { kindOfType, parseEvent, type EventKind } from '../shared/core/events';
import { MessageProperties } from '../shared/core/messaging';
import { translateServiceBusError } from '../shared/adapters/serviceBusScheduler';
import type { CsvRow } from './csv';
import { operator } from './io';

/**
 * The CloudEvents `source` of every event `offboard enqueue` sends. With the event id it is the
 * event's identity (CloudEvents: source + id), so it never changes between runs or machines.
 */
export const ENQUEUE_SOURCE = 'offboard-cli/enqueue';

/** Wave ids go into event ids and MessageIds: short, and only characters safe in both. */
const WAVE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;

export function isWaveId(value: string): boolean {
  return WAVE_ID.test(value);
}

export const WAVE_ID_RULE =
  '1-40 characters: letters, digits, ".", "_" or "-", starting with a letter or digit';

/** A new wave: the UTC minute it was cut and 24 random bits, e.g. 20261130T0829Z-4f9a2c. */
export function newWaveId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 13);
  return `${stamp}Z-${randomBytes(3).toString('hex')}`;
}

export interface EnqueuePlan {
  queue: string;
  wave: string;
  messages: ServiceBusMessage[];
  errors: string[];
  /** The digest of the events' record keys: what the wave's approval approves, and only that. */
  approvalRoot: string;
}

/** The leaver flags of the action table (disableAccount, resetPassword...) are boolean columns. */
const BOOLEAN_COLUMNS = new Set<string>(LeaverFlags.map((flag) => flag.field));
const KNOWN_COLUMNS: Record<EventKind, string[]> = {
  'mfa.enabled': ['user', 'reason', 'ticket'],
  'employee.leaving': ['user', ...BOOLEAN_COLUMNS, 'effectiveAt', 'reason', 'ticket'],
  'employee.leaving.cancelled': ['user', 'reason', 'ticket'],
  'employee.reinstated': ['user', 'reason', 'ticket', 'departureEvent'],
};

function headerErrors(kind: EventKind, header: CsvRow, columns: string[]): string[] {
  const allowed = KNOWN_COLUMNS[kind];
  const unknown = columns.filter((c) => !allowed.includes(c));
  return [
    ...(columns.includes('user') ? [] : [`line ${header.line}: the header needs a "user" column`]),
    ...(unknown.length === 0
      ? []
      : [
          `line ${header.line}: unknown column(s) ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`,
        ]),
  ];
}

/** The event data of one row, or why the row is wrong. */
function rowData(columns: string[], row: CsvRow): Record<string, unknown> | string {
  if (row.fields.length !== columns.length)
    return `${row.fields.length} fields, the header has ${columns.length}`;
  const data: Record<string, unknown> = {};
  for (const [i, column] of columns.entries()) {
    const value = (row.fields[i] ?? '').trim();
    if (value === '') continue;
    if (!BOOLEAN_COLUMNS.has(column)) data[column] = value;
    else if (value === 'true' || value === 'false') data[column] = value === 'true';
    else return `${column} must be true or false (got "${value}")`;
  }
  return data;
}

const textOf = (value: unknown) => (typeof value === 'string' ? value : '');

/**
 * The event id: kind, wave, and a digest of what identifies the row within the wave (user, ticket,
 * leave date). The same file sent again in the same wave gets the same ids, so nothing is sent
 * twice; the same person in another wave (a second MFA roll-out, a rehire's second departure) is a
 * new event.
 */
function eventId(kind: EventKind, wave: string, data: Record<string, unknown>): string {
  const digest = stableId(
    kind,
    textOf(data.user).toLowerCase(),
    textOf(data.ticket),
    textOf(data.effectiveAt),
  ).slice(0, 32);
  return `${kind}-${wave}-${digest}`;
}

/**
 * Turns a CSV wave into events, validating every row with the same rules the functions apply.
 * Event ids are also the MessageIds: Service Bus duplicate detection drops a repeat within its
 * window, and the audit after it.
 */
export function planEnqueue(
  type: string,
  rows: CsvRow[],
  config: AppConfig,
  wave: string,
): EnqueuePlan {
  const kind = kindOfType(type);
  if (kind === undefined)
    return {
      queue: '',
      wave,
      messages: [],
      errors: [`--type ${type} is not an event type this app knows`],
      approvalRoot: '',
    };
  const queue = kind === 'mfa.enabled' ? config.queues.mfaEnabled : config.queues.employeeLeaving;
  const [header, ...body] = rows;
  if (header === undefined)
    return { queue, wave, messages: [], errors: ['the file is empty'], approvalRoot: '' };
  const columns = header.fields.map((f) => f.trim());
  const errors = headerErrors(kind, header, columns);
  if (errors.length > 0) return { queue, wave, messages: [], errors, approvalRoot: '' };

  const messages: ServiceBusMessage[] = [];
  const keys: RecordKey[] = [];
  const firstLineOf = new Map<string, number>();
  const by = operator();
  for (const row of body) {
    const data = rowData(columns, row);
    if (typeof data === 'string') {
      errors.push(`line ${row.line}: ${data}`);
      continue;
    }
    const id = eventId(kind, wave, data);
    const event = {
      specversion: '1.0',
      id,
      source: ENQUEUE_SOURCE,
      type,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data,
    };
    let key: RecordKey;
    try {
      const parsed = parseEvent(event, [kind]);
      key = eventKey(parsed, actionsOf(parsed));
    } catch (error) {
      errors.push(`line ${row.line}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const firstLine = firstLineOf.get(id);
    if (firstLine !== undefined) {
      errors.push(`line ${row.line}: the same user as line ${firstLine}`);
      continue;
    }
    firstLineOf.set(id, row.line);
    keys.push(key);
    messages.push({
      body: event,
      messageId: id,
      contentType: 'application/json',
      applicationProperties: { [MessageProperties.enqueuedBy]: by, [MessageProperties.wave]: wave },
    });
  }
  // The approval names exactly these events: each message carries its path to their digest.
  const tree = approvalTree(keys);
  messages.forEach((message, i) => {
    message.applicationProperties = {
      ...message.applicationProperties,
      [MessageProperties.waveProof]: tree.proofs[i] ?? '',
    };
  });
  return { queue, wave, messages, errors, approvalRoot: tree.root };
}

/**
 * Share of the write budget a wave leaves free at the source, for departures that arrive while it
 * runs (the app's pacer reserves room for them as well).
 */
export const WAVE_DEPARTURE_SHARE = 0.05;

/** Graph writes the events of a plan make, on average (an MFA event 1; a departure 1 to 3). */
export function writesPerEvent(plan: EnqueuePlan): number {
  const counts = plan.messages.map((message) => {
    const event = message.body as { type: string; data: Record<string, unknown> };
    const kind = kindOfType(event.type);
    if (kind !== 'employee.leaving') return plannedActions({ kind: 'mfa.enabled' }).length;
    const flags = Object.fromEntries(
      LeaverFlags.map((flag) => [flag.field, (event.data[flag.field] as boolean) ?? flag.default]),
    ) as Record<LeaverFlag, boolean>;
    return plannedActions({ kind, flags }).length;
  });
  return counts.length === 0 ? 1 : counts.reduce((a, b) => a + b, 0) / counts.length;
}

/**
 * When each message of a plan is enqueued: spread at the app's Graph write budget less the share
 * left to departures (or at `--rate` events per second), so a wave of 50,000 is handed to Service
 * Bus in seconds and arrives no faster than the app may write. `--rate 0`: all now.
 */
export function paceWave(
  plan: EnqueuePlan,
  options: { writesPerSecond: number; rate: number | undefined; start: Date },
): WavePlan | undefined {
  if (options.rate === 0 || plan.messages.length === 0) return undefined;
  // Ten-second batches: one Service Bus call per batch, a few thousand calls for 50,000 rows.
  const batchMs = 10_000;
  return options.rate === undefined
    ? planWaveSchedule({
        events: plan.messages.length,
        writesPerEvent: writesPerEvent(plan),
        writesPerSecond: options.writesPerSecond > 0 ? options.writesPerSecond : 20,
        departureShare: WAVE_DEPARTURE_SHARE,
        start: options.start,
        batchMs,
      })
    : planWaveSchedule({
        events: plan.messages.length,
        writesPerEvent: 1,
        writesPerSecond: options.rate,
        departureShare: 0,
        start: options.start,
        batchMs,
      });
}

/**
 * Sends a plan's messages, the one send path of `offboard enqueue`: each group of messages due at
 * the same time in one call, scheduled on Service Bus for that time (sent at once when it is due
 * now). Without a schedule everything is sent now, 100 to a call.
 */
export async function sendPlan(
  client: Pick<ServiceBusClient, 'createSender'>,
  plan: EnqueuePlan,
  schedule: WavePlan | undefined,
  progress: (sent: number) => void = () => undefined,
): Promise<number> {
  const sender = client.createSender(plan.queue);
  let sent = 0;
  try {
    for (const group of groupsOf(plan.messages, schedule)) {
      if (group.at === undefined || group.at.getTime() <= Date.now() + 1000)
        await sender.sendMessages(group.messages);
      else await sender.scheduleMessages(group.messages, group.at);
      sent += group.messages.length;
      progress(sent);
    }
  } catch (error) {
    throw translateServiceBusError(
      `send wave ${plan.wave} to ${plan.queue} (${sent} of ${plan.messages.length} sent; run the same command with --wave ${plan.wave} to send the rest without sending any twice)`,
      error,
    );
  } finally {
    await sender.close();
  }
  return sent;
}

/** Consecutive messages due at the same time, at most 100 to a group. */
function groupsOf(
  messages: ServiceBusMessage[],
  schedule: WavePlan | undefined,
): Array<{ at: Date | undefined; messages: ServiceBusMessage[] }> {
  const groups: Array<{ at: Date | undefined; messages: ServiceBusMessage[] }> = [];
  messages.forEach((message, i) => {
    const at = schedule?.enqueueAt[i];
    const last = groups[groups.length - 1];
    if (last !== undefined && last.at?.getTime() === at?.getTime() && last.messages.length < 100)
      last.messages.push(message);
    else groups.push({ at, messages: [message] });
  });
  return groups;
}
