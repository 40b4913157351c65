import { createHash } from 'node:crypto';
import type { OffboardingEvent } from './events';
import { AppMessageIdPrefixes } from './messaging';
import type { RecordKey } from './ports';
import { routeOfKind, type RouteName } from './routes';

/**
 * A stable, opaque id from parts: SHA-256 over the parts with a separator no part can contain.
 * The one helper for every derived id (record keys, scheduled copy message ids).
 */
export function stableId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 40);
}

/**
 * What an event asks for, as a digest: kind, user, planned actions and leave date. The same
 * identity with the same digest is a duplicate; with another digest it is a different event that
 * reused an id. Reason, ticket and `time` are left out: an HR system resending the same event
 * with a fresh timestamp is still the same event.
 */
export function contentDigest(event: OffboardingEvent, actions: readonly string[]): string {
  const user = event.user.value.toLowerCase();
  const effectiveAt =
    event.kind === 'employee.leaving' && event.effectiveAt !== undefined
      ? new Date(event.effectiveAt).toISOString()
      : '';
  return stableId(event.kind, user, [...actions].sort().join(','), effectiveAt);
}

/**
 * The record key of an event. Identity is CloudEvents `source` + `id` (the spec's rule), within
 * the route the event's kind belongs to: a sender to one queue cannot claim ids of another.
 */
export function eventKey(event: OffboardingEvent, actions: readonly string[]): RecordKey {
  return {
    identityKey: stableId('event', routeOfKind(event.kind), event.source, event.id),
    contentDigest: contentDigest(event, actions),
  };
}

/** The record key of a message that is not a valid event: its own, from the message id. */
export function invalidMessageKey(route: RouteName | 'command', messageId: string): RecordKey {
  return { identityKey: stableId('invalid', route, messageId), contentDigest: 'invalid' };
}

/** The message id of the copy parked after an audit outage: one per attempt of a message. */
export function outageCopyId(original: string, attempt: number): string {
  return `${AppMessageIdPrefixes.outage}${attempt}-${stableId(original)}`;
}

/**
 * The original message an outage copy stands for, only when its own id is the one the app derives
 * from it: a property alone is a sender's word, and could name another message.
 */
export function outageCopyOriginal(messageId: string, carried: unknown): string | undefined {
  if (typeof carried !== 'string') return undefined;
  if (!messageId.startsWith(AppMessageIdPrefixes.outage)) return undefined;
  const attempt = /^(\d+)-/.exec(messageId.slice(AppMessageIdPrefixes.outage.length))?.[1];
  return attempt !== undefined && messageId === outageCopyId(carried, Number(attempt))
    ? carried
    : undefined;
}
