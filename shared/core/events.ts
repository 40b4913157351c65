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

/**
 * A media type that declares JSON content (CloudEvents JSON format 3.1.1: subtype `json` or a
 * `+json` suffix), with or without parameters such as `; charset=utf-8`.
 */
const JSON_MEDIA_TYPE = /^[\w.+-]+\/(?:[\w.+-]+\+)?json(?:\s*;.*)?$/i;

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
          (value) => JSON_MEDIA_TYPE.test(value),
          'must declare JSON (application/json, or */json or */*+json, parameters allowed)',
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

/**
 * A message in the CloudEvents AMQP binding's binary content mode: the attributes came as
 * `cloudEvents:` (or `cloudEvents_`) application properties, `datacontenttype` as the message's
 * content type, and the data as its body. decodeBody turns it into the structured (JSON format)
 * event, so everything after the adapter sees one shape.
 */
export class BinaryModeMessage {
  constructor(
    /** Attribute name (without prefix) to value as received (AMQP native type or string). */
    readonly attributes: Readonly<Record<string, unknown>>,
    readonly data: unknown,
    readonly contentType: string | undefined,
  ) {}
}

/** A message in a content mode or event format this app does not read; decodeBody names it. */
export class UnsupportedContentMode {
  constructor(readonly rule: string) {}
}

/** What the Service Bus trigger delivers: body, content type and application properties. */
export interface ReceivedMessage {
  body: unknown;
  contentType?: string | undefined;
  properties: Readonly<Record<string, unknown>>;
}

/**
 * Application property prefixes of binary mode: `cloudEvents:` is the AMQP binding's; `cloudEvents_`
 * is what JMS-compatible producers use (the CloudEvents Java SDK's Spring AMQP binding reads both).
 */
const ATTRIBUTE_PREFIXES = ['cloudEvents:', 'cloudEvents_'] as const;

function attributeName(property: string): string | undefined {
  const prefix = ATTRIBUTE_PREFIXES.find((p) => property.startsWith(p));
  return prefix === undefined ? undefined : property.slice(prefix.length);
}

/** The media type without parameters, lower case. */
function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

/**
 * The event a Service Bus message carries, by content mode (CloudEvents AMQP binding, section 3):
 * - content type `application/cloudevents+json`: structured mode, the body is the event;
 * - `cloudEvents:`/`cloudEvents_` application properties and any other content type: binary mode;
 * - neither: structured JSON (what producers send as `application/json` or with no content type);
 * - `application/cloudevents-batch+json` or another event format: rejected, naming it.
 * Binary-mode attributes leave the properties: the copies the app schedules carry the structured
 * event (decodeBody's result) and must not be read as binary again.
 */
export function eventMessage(message: ReceivedMessage): {
  body: unknown;
  properties: Record<string, unknown>;
} {
  const type = message.contentType === undefined ? '' : mediaType(message.contentType);
  const properties = { ...message.properties };
  if (type.startsWith('application/cloudevents')) {
    if (type === 'application/cloudevents+json') return { body: message.body, properties };
    const rule = type.startsWith('application/cloudevents-batch')
      ? `batched content mode (${type}) is not supported: send one event per message, in structured or binary mode`
      : `structured content mode in the event format ${type} is not supported: use the JSON format (application/cloudevents+json) or binary mode`;
    return { body: new UnsupportedContentMode(rule), properties };
  }
  // A Map, not an object: attribute names come from outside (`cloudEvents:__proto__`).
  const attributes = new Map<string, unknown>();
  for (const [property, value] of Object.entries(message.properties)) {
    const name = attributeName(property);
    if (name === undefined) continue;
    delete properties[property];
    if (attributes.has(name) && !sameAttribute(attributes.get(name), value)) {
      return {
        body: new UnsupportedContentMode(
          `binary content mode: attribute ${name} is sent twice with different values (cloudEvents:${name} and cloudEvents_${name})`,
        ),
        properties,
      };
    }
    attributes.set(name, value);
  }
  if (attributes.size === 0) return { body: message.body, properties };
  return {
    body: new BinaryModeMessage(Object.fromEntries(attributes), message.body, message.contentType),
    properties,
  };
}

function sameAttribute(a: unknown, b: unknown): boolean {
  return String(canonicalAttribute(a)) === String(canonicalAttribute(b));
}

/**
 * An attribute value as the JSON format carries it: AMQP timestamp as RFC 3339, AMQP binary as
 * base64 (the AMQP binding requires receivers to accept native types and canonical strings alike).
 * Anything else is passed on for the envelope's validation to judge.
 */
function canonicalAttribute(value: unknown): unknown {
  if (value instanceof Date)
    return Number.isNaN(value.getTime()) ? 'an invalid date' : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value;
  return value;
}

/** The structured (JSON format) event of a binary-mode message. */
function structuredOf(message: BinaryModeMessage): Record<string, unknown> {
  for (const name of ['data', 'data_base64'] as const) {
    if (Object.hasOwn(message.attributes, name))
      throw invalid(
        `binary content mode: ${name} is the message body, not an application property`,
      );
  }
  // Own properties only (fromEntries), so checkShape sees a `__proto__` attribute and rejects it.
  const event: Record<string, unknown> = Object.fromEntries(
    Object.entries(message.attributes).map(([name, value]) => [name, canonicalAttribute(value)]),
  );
  // datacontenttype travels as the message's content type (a property only stands in without one).
  if (message.contentType !== undefined) event.datacontenttype = message.contentType;
  const contentType = event.datacontenttype;
  if (typeof contentType === 'string' && !JSON_MEDIA_TYPE.test(contentType))
    throw invalid(
      `binary content mode: datacontenttype (the message content type) "${contentType}" is not JSON; the data must be application/json`,
    );
  event.data = jsonData(message.data, 'binary content mode: the message body (data)');
  return event;
}

/** Data sent as bytes (a binary-mode body, or `data_base64`) read as UTF-8 JSON. */
function jsonData(data: unknown, what: string): unknown {
  if (data instanceof Uint8Array || data instanceof ArrayBuffer || typeof data === 'string')
    return decodeJson(data, what);
  // The trigger may have parsed a JSON body already.
  if (data === null || data === undefined) throw invalid(`${what} is empty`);
  return data;
}

/** Bytes or text to a JSON value, within the size limit, before anything recursive sees it. */
function decodeJson(body: Uint8Array | ArrayBuffer | string, what: string): unknown {
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    const bytes = body instanceof ArrayBuffer ? new Uint8Array(body) : body;
    if (bytes.byteLength > MAX_EVENT_BYTES) {
      throw invalid(`event is ${bytes.byteLength} bytes; the limit is ${MAX_EVENT_BYTES}`);
    }
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw invalid(`${what} is not valid UTF-8`);
    }
  }
  if (Buffer.byteLength(text, 'utf8') > MAX_EVENT_BYTES) {
    throw invalid(
      `event is ${Buffer.byteLength(text, 'utf8')} bytes; the limit is ${MAX_EVENT_BYTES}`,
    );
  }
  if (text.trim() === '') throw invalid(`${what} is empty`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch {
    throw invalid(`${what} is not JSON`);
  }
  checkShape(parsed);
  return parsed;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `data_base64` (JSON format 3.1.2: binary data, to be read by its datacontenttype) as the JSON
 * data it encodes. `data` and `data_base64` exclude each other.
 */
function withDecodedData(event: Record<string, unknown>): Record<string, unknown> {
  if (!Object.hasOwn(event, 'data_base64')) return event;
  const { data_base64: encoded, ...rest } = event;
  if (Object.hasOwn(event, 'data'))
    throw invalid('data and data_base64 must not both be present (CloudEvents JSON format)');
  if (typeof encoded !== 'string' || !BASE64.test(encoded))
    throw invalid('data_base64 must be a base64 string (RFC 4648)');
  const { datacontenttype } = event;
  if (typeof datacontenttype === 'string' && !JSON_MEDIA_TYPE.test(datacontenttype))
    throw invalid(
      `datacontenttype "${datacontenttype}" is not JSON; the data in data_base64 must be application/json`,
    );
  return { ...rest, data: decodeJson(Buffer.from(encoded, 'base64'), 'data_base64') };
}

/**
 * Turns what the trigger delivered (object, JSON string or bytes, or a binary-mode message) into
 * a plain JSON value: the structured event.
 */
export function decodeBody(body: unknown): unknown {
  if (body instanceof UnsupportedContentMode) throw invalid(body.rule);
  if (body instanceof BinaryModeMessage) {
    const event = structuredOf(body);
    checkShape(event);
    return event;
  }
  if (body instanceof Uint8Array || body instanceof ArrayBuffer || typeof body === 'string')
    return decodeJson(body, 'event body');
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
    // A binary-mode message whose data is bad still names its id.
    const value = body instanceof BinaryModeMessage ? body.attributes : decodeBody(body);
    if (typeof value === 'object' && value !== null && 'id' in value) {
      const id: unknown = value.id;
      if (typeof id === 'string' && printable(MAX_ID).safeParse(id).success) return id;
    }
  } catch {
    // Not decodable: no id to salvage.
  }
  return undefined;
}

/** The structured event as a JSON object, its data decoded from `data_base64` if sent so. */
export function decodeEvent(body: unknown): Record<string, unknown> {
  const decoded = decodeBody(body);
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) {
    throw invalid('event must be a JSON object (a CloudEvents 1.0 structured event)');
  }
  return withDecodedData(decoded as Record<string, unknown>);
}

/**
 * Parses and validates an event for a queue that accepts `accepts`. Throws an InvalidEvent error
 * naming every offending field and rule; nothing invalid gets past this point.
 */
export function parseEvent(body: unknown, accepts: readonly EventKind[]): OffboardingEvent {
  const value = decodeEvent(body);
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
