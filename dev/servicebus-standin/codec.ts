/**
 * AMQP 1.0 message codec helpers for the Service Bus stand-in.
 *
 * Stored messages keep their bare-message sections (properties, body, footer) as the raw bytes
 * the client encoded, and keep message annotations and application properties as rhea `Typed`
 * values, so that the broker can add or change entries (sequence number, lock expiry, dead-letter
 * reason, properties to modify) without losing the original AMQP types of the others.
 */
import type { Typed } from 'rhea';
import { message as rheaMessage, types as rheaTypes, uuid_to_string } from 'rhea';

export const SectionCode = {
  header: 0x70,
  deliveryAnnotations: 0x71,
  messageAnnotations: 0x72,
  properties: 0x73,
  applicationProperties: 0x74,
  data: 0x75,
  sequence: 0x76,
  value: 0x77,
  footer: 0x78,
} as const;

const symbolicSections: Record<string, number> = {
  'amqp:header:list': SectionCode.header,
  'amqp:delivery-annotations:map': SectionCode.deliveryAnnotations,
  'amqp:message-annotations:map': SectionCode.messageAnnotations,
  'amqp:properties:list': SectionCode.properties,
  'amqp:application-properties:map': SectionCode.applicationProperties,
  'amqp:data:binary': SectionCode.data,
  'amqp:amqp-sequence:list': SectionCode.sequence,
  'amqp:value:*': SectionCode.value,
  'amqp:footer:map': SectionCode.footer,
};

/** Batch envelope format used by Service Bus clients (one data section per encoded message). */
export const BATCH_MESSAGE_FORMAT = 0x80013700;

interface RheaReader {
  position: number;
  read(): Typed;
  remaining(): number;
}
interface RheaWriter {
  write(o: Typed): void;
  toBuffer(): Buffer;
}
/** Parts of rhea's runtime `types` module that its typings do not declare. */
interface RheaTypesRuntime {
  Reader: new (buffer: Buffer) => RheaReader;
  Writer: new () => RheaWriter;
}
const typesRuntime = rheaTypes as unknown as RheaTypesRuntime;

/** An AMQP map as ordered key / typed value pairs. */
export type TypedEntries = Array<[string, Typed]>;

export interface MessageHeader {
  durable?: boolean;
  priority?: number;
  ttl?: number;
}

/** A message as the broker stores it. */
export interface MessageParts {
  header: MessageHeader;
  annotations: TypedEntries;
  /** Raw properties section, if the client sent one. */
  properties?: Buffer;
  applicationProperties: TypedEntries;
  /** Raw body sections and footer. */
  tail: Buffer;
}

function sectionCode(section: Typed): number | undefined {
  const descriptor: unknown = (section.descriptor as Typed | undefined)?.value;
  if (typeof descriptor === 'number') return descriptor;
  if (typeof descriptor === 'string') return symbolicSections[descriptor];
  return undefined;
}

function mapEntries(section: Typed): TypedEntries {
  const items: unknown = section.value;
  const entries: TypedEntries = [];
  if (!Array.isArray(items)) return entries;
  for (let i = 0; i + 1 < items.length; i += 2) {
    const key = items[i] as Typed;
    const value = items[i + 1] as Typed;
    entries.push([String(key.value), value]);
  }
  return entries;
}

function headerFields(section: Typed): MessageHeader {
  const items: unknown = section.value;
  const header: MessageHeader = {};
  if (!Array.isArray(items)) return header;
  const read = (i: number): unknown => (items[i] as Typed | undefined)?.value;
  const durable = read(0);
  const priority = read(1);
  const ttl = read(2);
  if (typeof durable === 'boolean') header.durable = durable;
  if (typeof priority === 'number') header.priority = priority;
  if (typeof ttl === 'number') header.ttl = ttl;
  return header;
}

/** Splits an encoded AMQP message into the parts the broker stores. */
export function parseMessage(buffer: Buffer): MessageParts {
  const reader = new typesRuntime.Reader(buffer);
  const parts: MessageParts = {
    header: {},
    annotations: [],
    applicationProperties: [],
    tail: Buffer.alloc(0),
  };
  const tail: Buffer[] = [];
  while (reader.remaining() > 0) {
    const start = reader.position;
    const section = reader.read();
    const raw = buffer.subarray(start, reader.position);
    switch (sectionCode(section)) {
      case SectionCode.header:
        parts.header = headerFields(section);
        break;
      case SectionCode.deliveryAnnotations:
        break; // delivery annotations are hop-by-hop: not stored
      case SectionCode.messageAnnotations:
        parts.annotations = mapEntries(section);
        break;
      case SectionCode.properties:
        parts.properties = Buffer.from(raw);
        break;
      case SectionCode.applicationProperties:
        parts.applicationProperties = mapEntries(section);
        break;
      default:
        tail.push(Buffer.from(raw));
    }
  }
  parts.tail = Buffer.concat(tail);
  return parts;
}

export function getEntry(entries: TypedEntries, key: string): Typed | undefined {
  return entries.find(([k]) => k === key)?.[1];
}

export function setEntry(entries: TypedEntries, key: string, value: Typed): void {
  const existing = entries.find(([k]) => k === key);
  if (existing) existing[1] = value;
  else entries.push([key, value]);
}

function encodeMap(entries: TypedEntries, code: number, symbolicKeys: boolean): Typed {
  const items: Typed[] = [];
  for (const [key, value] of entries) {
    items.push(symbolicKeys ? rheaTypes.wrap_symbol(key) : rheaTypes.wrap_string(key), value);
  }
  // A list of already typed items wrapped as a map: build it through wrap_map with an
  // object whose values pass through untouched (Typed implements toRheaTyped).
  const map = rheaTypes.wrap_map({});
  map.value = items;
  return rheaTypes.described(rheaTypes.wrap_ulong(code), map) as Typed;
}

export interface EncodeOptions {
  deliveryCount: number;
  /** Message annotations to add or replace for this copy only. */
  annotations?: TypedEntries;
}

/** Encodes a stored message for transfer, with a fresh header and extra annotations. */
export function encodeMessage(parts: MessageParts, options: EncodeOptions): Buffer {
  const writer = new typesRuntime.Writer();
  const { header } = parts;
  const headerList = rheaTypes.wrap_list([
    rheaTypes.wrap_boolean(header.durable ?? false),
    rheaTypes.wrap_ubyte(header.priority ?? 4),
    header.ttl === undefined ? null : rheaTypes.wrap_uint(header.ttl),
    rheaTypes.wrap_boolean(false),
    rheaTypes.wrap_uint(options.deliveryCount),
  ]);
  writer.write(rheaTypes.described(rheaTypes.wrap_ulong(SectionCode.header), headerList) as Typed);
  const annotations: TypedEntries = parts.annotations.map(([k, v]) => [k, v]);
  for (const [key, value] of options.annotations ?? []) setEntry(annotations, key, value);
  if (annotations.length > 0) {
    writer.write(encodeMap(annotations, SectionCode.messageAnnotations, true));
  }
  const chunks: Buffer[] = [writer.toBuffer()];
  if (parts.properties) chunks.push(parts.properties);
  if (parts.applicationProperties.length > 0) {
    const appWriter = new typesRuntime.Writer();
    appWriter.write(
      encodeMap(parts.applicationProperties, SectionCode.applicationProperties, false),
    );
    chunks.push(appWriter.toBuffer());
  }
  chunks.push(parts.tail);
  return Buffer.concat(chunks);
}

/** Decoded, plain JavaScript view of a message (for ids, introspection and tests). */
export interface DecodedMessage {
  messageId?: string;
  body: unknown;
  applicationProperties: Record<string, unknown>;
  annotations: Record<string, unknown>;
}

export function messageIdToString(id: unknown): string | undefined {
  if (id === undefined || id === null) return undefined;
  if (Buffer.isBuffer(id)) return id.length === 16 ? uuid_to_string(id) : id.toString('hex');
  if (typeof id === 'string') return id;
  if (typeof id === 'number' || typeof id === 'bigint' || typeof id === 'boolean') {
    return String(id);
  }
  return JSON.stringify(id);
}

function toRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' ? { ...value } : {};
}

/** Decodes a body the way @azure/service-bus does (data sections are tried as JSON). */
function decodeBody(body: unknown): unknown {
  if (body !== null && typeof body === 'object' && 'typecode' in body && 'content' in body) {
    const section = body;
    if (section.typecode === SectionCode.data && Buffer.isBuffer(section.content)) {
      try {
        return JSON.parse(section.content.toString('utf8'));
      } catch {
        return section.content;
      }
    }
    return section.content;
  }
  return body;
}

export function decodeMessage(buffer: Buffer): DecodedMessage {
  const decoded = rheaMessage.decode(buffer);
  const messageId = messageIdToString(decoded.message_id);
  const result: DecodedMessage = {
    body: decodeBody(decoded.body),
    applicationProperties: toRecord(decoded.application_properties),
    annotations: toRecord(decoded.message_annotations),
  };
  if (messageId !== undefined) result.messageId = messageId;
  return result;
}

export function decodeParts(parts: MessageParts, deliveryCount = 0): DecodedMessage {
  return decodeMessage(encodeMessage(parts, { deliveryCount }));
}

/**
 * Sets properties.message-id when the client sent none (Service Bus assigns one), keeping the
 * other property fields as encoded.
 */
export function ensureMessageId(parts: MessageParts, messageId: string): void {
  let fields: Typed[] = [];
  if (parts.properties) {
    const section = new typesRuntime.Reader(parts.properties).read();
    const value: unknown = section.value;
    if (Array.isArray(value)) fields = [...(value as Typed[])];
  }
  fields[0] = rheaTypes.wrap_string(messageId);
  const list = rheaTypes.wrap_list(fields);
  const writer = new typesRuntime.Writer();
  writer.write(rheaTypes.described(rheaTypes.wrap_ulong(SectionCode.properties), list) as Typed);
  parts.properties = writer.toBuffer();
}

/** Reads an AMQP timestamp / number annotation as epoch milliseconds. */
export function timeValue(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') return value;
  return undefined;
}

/** The 16-byte delivery tag the SDK turns into the lock token (.NET GUID byte order). */
export function reorderGuidBytes(bytes: Buffer): Buffer {
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  return Buffer.from(order.map((i) => bytes[i] ?? 0));
}
