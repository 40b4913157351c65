import type { ActionName } from './actions';
import { readDecideWrite, type Versioned } from './auditRecords';
import type { ActionResult, DirectoryUser, StoredTimeline, TimelineStore } from './ports';
import {
  decide,
  emptyTimeline,
  intentOf,
  withApplied,
  withIntent,
  withCommit,
  withoutCommit,
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

/** A timeline as read or written, with its ETag: the next conditional write starts from it. */
export type KnownTimeline = Versioned<Timeline>;

async function update<V>(
  store: TimelineStore,
  personId: string,
  change: (current: Timeline) => { next: Timeline; verdict: V },
  known?: KnownTimeline,
): Promise<{ value: Timeline | undefined; verdict: V; version: KnownTimeline | undefined }> {
  const id = personId.toLowerCase();
  let version: KnownTimeline | undefined = known;
  const remember = (stored: StoredTimeline | undefined): KnownTimeline | undefined => {
    if (stored !== undefined) version = { value: stored.timeline, etag: stored.etag };
    return stored && { value: stored.timeline, etag: stored.etag };
  };
  const result = await readDecideWrite<Timeline, V>(
    {
      read: async () => remember(await store.read(id)),
      create: async (timeline) => remember(await store.create(timeline)),
      replace: async (timeline, etag) => remember(await store.replace(timeline, etag)),
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
    known,
  );
  return { ...result, version };
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
): Promise<{ verdict: Verdict; timeline: Timeline; version: KnownTimeline | undefined }> {
  const result = await update(store, user.id, (current) => {
    const seen = withSeen(current, user.accountEnabled, seenAt);
    const standing = intentOf(seen, intent.ref) ?? intent;
    const next = withIntent(seen, standing);
    return { next, verdict: { verdict: decide(next, standing), timeline: next } };
  });
  return { ...result.verdict, version: result.version };
}

/**
 * The commit point, just before a run's first Graph write: decides again against every intent
 * admitted since, and marks the writes to come in the same conditional write. An intent admitted
 * after this point finds the run committed (it waits for it, then sees what it wrote); one admitted
 * before it supersedes the run here, before anything is written.
 */
export async function commitWrites(
  store: TimelineStore,
  personId: string,
  intent: Intent,
  actions: readonly ActionName[],
  at: string,
  known: KnownTimeline | undefined,
): Promise<{ verdict: Verdict; version: KnownTimeline | undefined }> {
  const result = await update<Verdict>(
    store,
    personId,
    (current) => {
      const standing = intentOf(current, intent.ref) ?? intent;
      const admitted = withIntent(current, standing);
      const verdict = decide(admitted, standing);
      if (verdict.kind === 'superseded') return { next: current, verdict };
      return {
        next: withCommit(admitted, {
          ref: intent.ref,
          eventId: intent.eventId,
          actions: [...actions],
          at,
        }),
        verdict,
      };
    },
    known,
  );
  return { verdict: result.verdict, version: result.version };
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

/**
 * Notes the changes this run made to the account (the writes it made that succeeded) and clears
 * its commit mark.
 */
export async function noteApplied(
  store: TimelineStore,
  personId: string,
  event: { ref: string; eventId: string },
  actions: readonly ActionResult[],
  at: string,
  known?: KnownTimeline,
): Promise<void> {
  const made = actions.filter((a) => a.status === 'succeeded');
  await update(
    store,
    personId,
    (current) => ({
      next: made.reduce(
        (timeline, a) =>
          withApplied(timeline, a.action, {
            at,
            ref: event.ref,
            eventId: event.eventId,
          }),
        withoutCommit(current, event.ref),
      ),
      verdict: undefined,
    }),
    known,
  );
}
