import { readDecideWrite } from './auditRecords';
import type { ActionResult, DirectoryUser, TimelineStore } from './ports';
import {
  decide,
  emptyTimeline,
  intentOf,
  withApplied,
  withIntent,
  withSeen,
  type Intent,
  type Timeline,
  type Verdict,
} from './timeline';

/*
 * The shell around timeline.ts: reads a person's timeline with its ETag, applies the pure rule and
 * writes it back only if it changed (a lost race reads and decides again). Every failure of the
 * store is AuditUnavailable (retryable): no write is decided without the timeline.
 */

function update<V>(
  store: TimelineStore,
  personId: string,
  change: (current: Timeline) => { next: Timeline; verdict: V },
): Promise<{ value: Timeline | undefined; verdict: V }> {
  const id = personId.toLowerCase();
  return readDecideWrite<Timeline, V>(
    {
      read: async () => {
        const stored = await store.read(id);
        return stored && { value: stored.timeline, etag: stored.etag };
      },
      create: async (timeline) => {
        const stored = await store.create(timeline);
        return stored && { value: stored.timeline, etag: stored.etag };
      },
      replace: async (timeline, etag) => {
        const stored = await store.replace(timeline, etag);
        return stored && { value: stored.timeline, etag: stored.etag };
      },
    },
    (current) => {
      const before = current ?? emptyTimeline(id);
      const { next, verdict } = change(before);
      const changed = current === undefined || JSON.stringify(next) !== JSON.stringify(current);
      // Nothing new (a redelivery, a person never written to): no write, and no empty entity.
      const worthWriting = changed && (current !== undefined || next.intents.length > 0);
      return worthWriting ? { next, verdict } : { verdict };
    },
    'person timeline',
  );
}

/**
 * Puts this event's intent on the person's timeline (its first-seen time stays) together with what
 * the read of the account showed, and decides whether the event may still write.
 */
export async function admitIntent(
  store: TimelineStore,
  user: DirectoryUser,
  intent: Intent,
  seenAt: string,
): Promise<{ verdict: Verdict; timeline: Timeline }> {
  const result = await update(store, user.id, (current) => {
    const seen = withSeen(current, user.accountEnabled, seenAt);
    const standing = intentOf(seen, intent.ref) ?? intent;
    const next = withIntent(seen, standing);
    return { next, verdict: { verdict: decide(next, standing), timeline: next } };
  });
  return result.verdict;
}

/** Notes what a read of the account showed (an event that is no HR intent, such as MFA). */
export async function noteSeen(
  store: TimelineStore,
  user: DirectoryUser,
  seenAt: string,
): Promise<Timeline> {
  const result = await update(store, user.id, (current) => {
    const next = withSeen(current, user.accountEnabled, seenAt);
    return { next, verdict: next };
  });
  return result.verdict;
}

/** Notes the changes this run made to the account (the writes it made that succeeded). */
export async function noteApplied(
  store: TimelineStore,
  personId: string,
  event: { ref: string; eventId: string },
  actions: readonly ActionResult[],
  at: string,
): Promise<void> {
  const made = actions.filter((a) => a.status === 'succeeded');
  if (made.length === 0) return;
  await update(store, personId, (current) => ({
    next: made.reduce(
      (timeline, a) =>
        withApplied(timeline, a.action, {
          at,
          ref: event.ref,
          eventId: event.eventId,
        }),
      current,
    ),
    verdict: undefined,
  }));
}
