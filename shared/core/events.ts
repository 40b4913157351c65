import * as z from 'zod/mini';
import { en } from 'zod/locales';
import { LeaverFlags, type LeaverFlag } from './actions';
import { ErrorCodes, OffboardingError } from './errors';
import { parseUserRef, type UserRef } from './userRef';

/** The event kinds this app acts on; `type` may carry a reverse-DNS prefix (com.contoso.hr.employee.leaving). */
export const EventKinds = [
  'employee.leaving',
  'employee.leaving.cancelled',
  'employee.reinstated',
  'mfa.enabled',
] as const;
export type EventKind = (typeof EventKinds)[number];

/** Largest event body accepted, in bytes. Real events are well under 2 KB. */
export const MAX_EVENT_BYTES = 64 * 1024;
const MAX_TEXT = 256;
const MAX_ID = 128;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;

// zod/mini (the functional API) rather than zod: the bundle keeps only the validators used here,
// which takes about 55 ms off every cold start (docs/benchmarks.md). Its messages need a locale.
z.config(en());

const printable = (max: number) =>
  z.string().check(
    z.minLength(1, 'must not be empty'),
    z.maxLength(max, `must be at most ${max} characters`),
    z.refine((value) => !CONTROL.test(value), 'must not contain control characters'),
  );

const freeText = z.string().check(
  z.maxLength(MAX_TEXT, `must be at most ${MAX_TEXT} characters`),
  // Tabs and newlines are fine in a reason; other control characters are not.
  z.refine(
    // eslint-disable-next-line no-control-regex
    (value) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(value),
    'must not contain control characters',
  ),
);

const timestamp = z.iso.datetime({
  offset: true,
  message: 'must be an RFC 3339 timestamp with a time zone, e.g. 2026-11-27T10:00:00Z',
});

const userField = z.string().check(
  z.superRefine((value, ctx) => {
    const parsed = parseUserRef(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.rule });
  }),
);

/** One optional boolean per action a departure may ask for (the action table's leaver flags). */
const leaverFlagFields = Object.fromEntries(
  LeaverFlags.map((flag) => [flag.field, z.optional(z.boolean())]),
) as Record<LeaverFlag, z.ZodMiniOptional<z.ZodMiniBoolean>>;

const leavingData = z.strictObject({
  user: userField,
  ...leaverFlagFields,
  effectiveAt: z.optional(timestamp),
  reason: z.optional(freeText),
  ticket: z.optional(freeText),
});

const cancelledData = z.strictObject({
  user: userField,
  reason: z.optional(freeText),
  ticket: z.optional(freeText),
});

const reinstatedData = z.strictObject({
  user: userField,
  reason: z.optional(freeText),
  ticket: z.optional(freeText),
  /** The employee.leaving event this undoes (`offboard reinstate --event`), kept as a note. */
  departureEvent: z.optional(printable(MAX_ID)),
});

const mfaData = z.strictObject({
  user: userField,
  reason: z.optional(freeText),
  ticket: z.optional(freeText),
});

const KNOWN_ATTRIBUTES = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'time',
  'subject',
  'datacontenttype',
  'dataschema',
  'data',
]);

const envelopeAttributes = z.object({
  specversion: z.literal('1.0', { message: 'must be "1.0" (CloudEvents 1.0)' }),
  id: printable(MAX_ID),
  source: printable(MAX_TEXT),
  type: printable(MAX_TEXT),
  time: z.optional(timestamp),
  subject: z.optional(printable(MAX_TEXT)),
  datacontenttype: z.optional(
    z
      .string()
      .check(
        z.refine(
          (value) => /^application\/(?:[\w.+-]+\+)?json(?:\s*;.*)?$/i.test(value),
          'must be application/json',
        ),
      ),
  ),
  dataschema: z.optional(printable(MAX_TEXT)),
  data: z.unknown(),
});

// CloudEvents extension attributes are allowed, but must follow the spec's naming rule.
const envelope = z.catchall(envelopeAttributes, z.unknown()).check(
  z.superRefine((value, ctx) => {
    for (const [key, attribute] of Object.entries(value)) {
      if (KNOWN_ATTRIBUTES.has(key)) continue;
      if (!EXTENSION_NAME.test(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message:
            'is not a CloudEvents attribute (extension names are 1-20 lowercase letters or digits)',
        });
      } else if (!isCloudEventsScalar(attribute)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message:
            'must be a string, an integer or a boolean (CloudEvents extension attributes are never objects or arrays)',
        });
      }
    }
  }),
);

/** The CloudEvents type system as JSON carries it: Boolean, Integer, String (URI, timestamp...). */
function isCloudEventsScalar(value: unknown): boolean {
  return (
    typeof value === 'boolean' ||
    (typeof value === 'string' && !CONTROL.test(value) && value.length <= MAX_TEXT) ||
    (typeof value === 'number' && Number.isSafeInteger(value))
  );
}

/** Deepest nesting an event may have (a real one has 3 levels: envelope, data, values). */
const MAX_DEPTH = 8;
/** Keys that mean something to JavaScript objects; no event needs them. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Checks depth and keys without recursion, before anything recursive (validation, serialisation,
 * the AMQP encoder) sees the value.
 */
function checkShape(root: unknown): void {
  const pending: Array<{ value: unknown; depth: number; path: string }> = [
    { value: root, depth: 0, path: 'event' },
  ];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const { value, depth, path } = item;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= MAX_DEPTH) throw invalid(`${path} is nested more than ${MAX_DEPTH} levels deep`);
    for (const [key, child] of Object.entries(value)) {
      if (FORBIDDEN_KEYS.has(key)) throw invalid(`${path} has the forbidden key "${key}"`);
      pending.push({ value: child, depth: depth + 1, path: `${path}.${key}` });
    }
  }
}

export interface BaseEvent {
  id: string;
  source: string;
  /** `type` exactly as sent. */
  type: string;
  time?: string;
  user: UserRef;
  /** `data.user` exactly as sent. */
  userAsGiven: string;
  reason?: string;
  ticket?: string;
}

export interface LeavingEvent extends BaseEvent, Readonly<Record<LeaverFlag, boolean>> {
  kind: 'employee.leaving';
  effectiveAt?: string;
}
export interface LeavingCancelledEvent extends BaseEvent {
  kind: 'employee.leaving.cancelled';
}
export interface ReinstatedEvent extends BaseEvent {
  kind: 'employee.reinstated';
  departureEvent?: string;
}
export interface MfaEnabledEvent extends BaseEvent {
  kind: 'mfa.enabled';
}
export type OffboardingEvent =
  LeavingEvent | LeavingCancelledEvent | ReinstatedEvent | MfaEnabledEvent;

/** The kind named by a CloudEvents `type`, accepting a reverse-DNS prefix. */
export function kindOfType(type: string): EventKind | undefined {
  // Longest first, so ".employee.leaving.cancelled" is not read as ".employee.leaving".
  const byLength = [...EventKinds].sort((a, b) => b.length - a.length);
  return byLength.find((kind) => type === kind || type.endsWith(`.${kind}`));
}

function invalid(message: string): OffboardingError {
  return new OffboardingError(ErrorCodes.InvalidEvent, message, { retryable: false });
}

function formatIssues(error: z.core.$ZodError, prefix = ''): string {
  return error.issues
    .map((issue) => {
      const path = [prefix, ...issue.path.map(String)].filter((p) => p !== '').join('.');
      const message =
        issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
      return `${path || 'event'} ${message}`;
    })
    .join('; ');
}

/** Turns what the trigger delivered (object, JSON string or bytes) into a plain JSON value. */
export function decodeBody(body: unknown): unknown {
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
    const bytes = body instanceof ArrayBuffer ? new Uint8Array(body) : body;
    if (bytes.byteLength > MAX_EVENT_BYTES) {
      throw invalid(`event is ${bytes.byteLength} bytes; the limit is ${MAX_EVENT_BYTES}`);
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw invalid('event body is not valid UTF-8');
    }
    return decodeBody(text);
  }
  if (typeof body === 'string') {
    if (Buffer.byteLength(body, 'utf8') > MAX_EVENT_BYTES) {
      throw invalid(
        `event is ${Buffer.byteLength(body, 'utf8')} bytes; the limit is ${MAX_EVENT_BYTES}`,
      );
    }
    if (body.trim() === '') throw invalid('event body is empty');
    let parsed: unknown;
    try {
      parsed = JSON.parse(body) as unknown;
    } catch {
      throw invalid('event body is not JSON');
    }
    checkShape(parsed);
    return parsed;
  }
  if (body === null || body === undefined) throw invalid('event body is empty');
  // The trigger may hand over an already-parsed object: check its shape before serialising it.
  checkShape(body);
  const size = Buffer.byteLength(JSON.stringify(body) ?? '', 'utf8');
  if (size > MAX_EVENT_BYTES)
    throw invalid(`event is ${size} bytes; the limit is ${MAX_EVENT_BYTES}`);
  return body;
}

/** Best-effort event id of a body that failed validation, so the audit can still key it. */
export function salvageEventId(body: unknown): string | undefined {
  try {
    const value = decodeBody(body);
    if (typeof value === 'object' && value !== null && 'id' in value) {
      const id: unknown = value.id;
      if (typeof id === 'string' && printable(MAX_ID).safeParse(id).success) return id;
    }
  } catch {
    // Not decodable: no id to salvage.
  }
  return undefined;
}

/**
 * Parses and validates an event for a queue that accepts `accepts`. Throws an InvalidEvent error
 * naming every offending field and rule; nothing invalid gets past this point.
 */
export function parseEvent(body: unknown, accepts: readonly EventKind[]): OffboardingEvent {
  const value = decodeBody(body);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('event must be a JSON object (a CloudEvents 1.0 structured event)');
  }
  const head = envelope.safeParse(value);
  if (!head.success) throw invalid(formatIssues(head.error));
  const event = head.data;

  const kind = kindOfType(event.type);
  if (kind === undefined) {
    throw invalid(
      `type "${event.type}" is not one of ${EventKinds.join(', ')} (optionally with a reverse-DNS prefix)`,
    );
  }
  if (!accepts.includes(kind)) {
    throw invalid(
      `type "${event.type}" does not belong on this queue, which takes ${accepts.join(', ')}`,
    );
  }
  if (typeof event.data !== 'object' || event.data === null || Array.isArray(event.data)) {
    throw invalid('data is required and must be a JSON object');
  }

  const schemas = {
    'employee.leaving': leavingData,
    'employee.leaving.cancelled': cancelledData,
    'employee.reinstated': reinstatedData,
    'mfa.enabled': mfaData,
  } satisfies Record<EventKind, z.ZodMiniType>;
  const schema = schemas[kind];
  const data = schema.safeParse(event.data);
  if (!data.success) {
    const extra =
      kind !== 'employee.leaving'
        ? ` (${[...LeaverFlags.map((f) => f.field), 'effectiveAt'].join(', ')} apply to employee.leaving only)`
        : '';
    const hasUnknownKey = data.error.issues.some((issue) => issue.code === 'unrecognized_keys');
    throw invalid(formatIssues(data.error, 'data') + (hasUnknownKey ? extra : ''));
  }
  const parsedUser = parseUserRef(data.data.user);
  if (!parsedUser.ok) throw invalid(`data.user ${parsedUser.rule}`);

  const base: BaseEvent = {
    id: event.id,
    source: event.source,
    type: event.type,
    user: parsedUser.ref,
    userAsGiven: data.data.user,
    ...(event.time === undefined ? {} : { time: event.time }),
    ...(data.data.reason === undefined ? {} : { reason: data.data.reason }),
    ...(data.data.ticket === undefined ? {} : { ticket: data.data.ticket }),
  };
  if (kind === 'employee.leaving') {
    const leaving = data.data as z.infer<typeof leavingData>;
    return {
      ...base,
      kind,
      ...(Object.fromEntries(
        LeaverFlags.map((flag) => [flag.field, leaving[flag.field] ?? flag.default]),
      ) as Record<LeaverFlag, boolean>),
      ...(leaving.effectiveAt === undefined ? {} : { effectiveAt: leaving.effectiveAt }),
    };
  }
  if (kind === 'employee.reinstated') {
    const { departureEvent } = data.data as z.infer<typeof reinstatedData>;
    return { ...base, kind, ...(departureEvent === undefined ? {} : { departureEvent }) };
  }
  return { ...base, kind };
}
