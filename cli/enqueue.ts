import type { ServiceBusClient, ServiceBusMessage } from '@azure/service-bus';
import { LeaverFlags, plannedActions, type LeaverFlag } from '../shared/core/actions';
import { planWaveSchedule, type WavePlan } from '../shared/pacing/waveSchedule';
import { eventKey, stableId } from '../shared/core/eventIdentity';
import { actionsOf } from '../shared/core/claim';
import type { RecordKey } from '../shared/core/ports';
import { parseUserRef, type UserRef } from '../shared/core/userRef';
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

export interface EnqueuePlan {
  queue: string;
  wave: string;
  messages: ServiceBusMessage[];
  errors: string[];
  /** The digest of the events' record keys: what the wave's approval approves, and only that. */
  approvalRoot: string;
  /** Per message: its line in the file and the user it names (whole-file checks). */
  rows: Array<{ line: number; user: UserRef }>;
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
      rows: [],
    };
  const queue = kind === 'mfa.enabled' ? config.queues.mfaEnabled : config.queues.employeeLeaving;
  const [header, ...body] = rows;
  if (header === undefined)
    return { queue, wave, messages: [], errors: ['the file is empty'], approvalRoot: '', rows: [] };
  const columns = header.fields.map((f) => f.trim());
  const errors = headerErrors(kind, header, columns);
  if (errors.length > 0) return { queue, wave, messages: [], errors, approvalRoot: '', rows: [] };

  const messages: ServiceBusMessage[] = [];
  const keys: RecordKey[] = [];
  const planned: EnqueuePlan['rows'] = [];
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
    let user: UserRef;
    try {
      const parsed = parseEvent(event, [kind]);
      key = eventKey(parsed, actionsOf(parsed));
      user = parsed.user;
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
    planned.push({ line: row.line, user });
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
  return { queue, wave, messages, errors, approvalRoot: tree.root, rows: planned };
}

/**
 * The wave id a file gets when `--wave` is not given: the UTC day and a digest of the type and
 * the file, so `--dry-run` shows the id the real run will use, and the same file sent again the
 * same day is the same wave (nothing sent twice).
 */
export function waveIdOf(type: string, fileText: string, now = new Date()): string {
  const day = now.toISOString().slice(0, 10).replace(/-/g, '');
  return `${day}-${stableId('wave', type, fileText).slice(0, 12)}`;
}

/** Who a user of the file is in the directory, when the operator's identity may read it. */
export type ResolveUser = (ref: UserRef) => Promise<{ id: string; upn?: string } | undefined>;

export interface WaveCheck {
  /** What stops the wave: nothing is sent. */
  errors: string[];
  /** What the operator should know (the checks that could not be made). */
  notes: string[];
}

/** Users looked up at once while checking a file. */
const RESOLVE_CONCURRENCY = 8;

/**
 * The file as a whole, before anything is sent: protected accounts are refused, the same person
 * twice (by UPN and object id, or under two tickets) is reported, and a departures wave above
 * the ceiling needs `--confirm-size` with its exact size. Users are resolved in the directory
 * where the operator's identity can read them; otherwise compared by their exact identifier.
 */
export async function checkWave(
  plan: EnqueuePlan,
  policy: { protectedUsers: ReadonlySet<string> },
  options: { departuresCeiling?: number; confirmSize?: number; resolve?: ResolveUser },
): Promise<WaveCheck> {
  const errors: string[] = [];
  const notes: string[] = [];
  const size = plan.messages.length;
  if (options.departuresCeiling !== undefined && size > options.departuresCeiling) {
    if (options.confirmSize === undefined)
      errors.push(
        `${size} departures is more than ${options.departuresCeiling} (the departures guardrail limit, or ENQUEUE_CONFIRM_DEPARTURES_ABOVE): check the file, then run again with --confirm-size ${size}`,
      );
    else if (options.confirmSize !== size)
      errors.push(
        `--confirm-size ${options.confirmSize} does not match the ${size} departures of the file`,
      );
  }
  const isProtected = (...ids: Array<string | undefined>) =>
    ids.some((id) => id !== undefined && policy.protectedUsers.has(id.toLowerCase()));
  for (const row of plan.rows)
    if (isProtected(row.user.value))
      errors.push(`line ${row.line}: ${row.user.value} is a protected account (PROTECTED_USERS)`);

  // Two identifiers of one kind name two people (a UPN, an object id): the directory is asked
  // only when the file or PROTECTED_USERS mixes kinds, where one person can appear as both.
  const kinds = new Set([
    ...plan.rows.map((row) => row.user.kind),
    ...[...policy.protectedUsers].map((id) => {
      const parsed = parseUserRef(id);
      return parsed.ok ? parsed.ref.kind : 'upn';
    }),
  ]);
  const identities = await resolveAll(
    plan.rows,
    kinds.size > 1 ? options.resolve : undefined,
    notes,
  );
  const firstLineOf = new Map<string, number>();
  plan.rows.forEach((row, i) => {
    const resolved = identities[i];
    if (
      resolved !== undefined &&
      isProtected(resolved.id, resolved.upn) &&
      !isProtected(row.user.value)
    )
      errors.push(
        `line ${row.line}: ${row.user.value} is the protected account ${resolved.upn ?? resolved.id} (PROTECTED_USERS)`,
      );
    const person = (resolved?.id ?? row.user.value).toLowerCase();
    const first = firstLineOf.get(person);
    if (first === undefined) firstLineOf.set(person, row.line);
    else
      errors.push(
        `line ${row.line}: the same person as line ${first}${resolved === undefined ? '' : ` (object ${resolved.id})`}`,
      );
  });
  return { errors, notes };
}

/** Each row's user in the directory; undefined where it cannot be read (then compared as given). */
async function resolveAll(
  rows: EnqueuePlan['rows'],
  resolve: ResolveUser | undefined,
  notes: string[],
): Promise<Array<{ id: string; upn?: string } | undefined>> {
  const found: Array<{ id: string; upn?: string } | undefined> = rows.map(() => undefined);
  if (resolve === undefined || rows.length === 0) return found;
  let failure: string | undefined;
  let next = 0;
  const worker = async () => {
    while (failure === undefined && next < rows.length) {
      const i = next++;
      const row = rows[i];
      if (row === undefined) continue;
      try {
        found[i] = await resolve(row.user);
      } catch (error) {
        // The operator's identity cannot read the directory: compare what the file says.
        failure = error instanceof Error ? error.message.split('\n')[0] : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: RESOLVE_CONCURRENCY }, worker));
  if (failure !== undefined) {
    notes.push(
      `could not read users in the directory (${failure}): the same person is found by exact identifier only (a UPN and an object id of one person are not matched)`,
    );
    return rows.map(() => undefined);
  }
  return found;
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
