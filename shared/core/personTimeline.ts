import type { ActionName } from './actions';
import { readDecideWrite, type Versioned } from './auditRecords';
import type { DirectoryUser, StoredTimeline, TimelineStore } from './ports';
import {
  decide,
  emptyTimeline,
  intentOf,
  withAttempted,
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

/** A timeline as read or written, with its ETag: the next conditional write starts from it. */
export type KnownTimeline = { found: Versioned<Timeline> | undefined };

async function update<V>(
  store: TimelineStore,
  personId: string,
  change: (current: Timeline) => { next: Timeline; verdict: V },
  known?: KnownTimeline,
): Promise<{ value: Timeline | undefined; verdict: V; version: KnownTimeline | undefined }> {
  const id = personId.toLowerCase();
  let version: KnownTimeline | undefined = known;
  const remember = (stored: StoredTimeline | undefined, read: boolean) => {
    const found = stored && { value: stored.timeline, etag: stored.etag };
    // A read that found nothing is known too; a write that lost its condition leaves nothing known.
    version = read || found !== undefined ? { found } : undefined;
    return found;
  };
  const result = await readDecideWrite<Timeline, V>(
    {
      read: async () => remember(await store.read(id), true),
      create: async (timeline) => remember(await store.create(timeline), false),
      replace: async (timeline, etag) => remember(await store.replace(timeline, etag), false),
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

/** What a read of the account showed, noted on the timeline with the next write. */
export interface Seen {
  accountEnabled: boolean | null;
  at: string;
}

function admitted(
  current: Timeline,
  intent: Intent,
  seen: Seen,
): { next: Timeline; standing: Intent } {
  const withRead = withSeen(current, seen.accountEnabled, seen.at);
  const standing = intentOf(withRead, intent.ref) ?? intent;
  return { next: withIntent(withRead, standing), standing };
}

/**
 * Whether this event may still write, by one read: the timeline as it would be with this event's
 * intent, not written yet. The commit point (or `admitIntent`) writes it, from this version.
 */
export async function checkIntent(
  store: TimelineStore,
  personId: string,
  intent: Intent,
  seen: Seen,
): Promise<{ verdict: Verdict; timeline: Timeline; version: KnownTimeline | undefined }> {
  const id = personId.toLowerCase();
  const stored = await store.read(id);
  const { next, standing } = admitted(stored?.timeline ?? emptyTimeline(id), intent, seen);
  return {
    verdict: decide(next, standing),
    timeline: next,
    version: { found: stored && { value: stored.timeline, etag: stored.etag } },
  };
}

/**
 * Puts this event's intent on the person's timeline (its first-seen time stays) together with what
 * the read of the account showed, and decides whether the event may still write.
 */
export async function admitIntent(
  store: TimelineStore,
  personId: string,
  intent: Intent,
  seen: Seen,
  known?: KnownTimeline,
): Promise<{ verdict: Verdict; timeline: Timeline; version: KnownTimeline | undefined }> {
  const result = await update(
    store,
    personId,
    (current) => {
      const { next, standing } = admitted(current, intent, seen);
      return { next, verdict: { verdict: decide(next, standing), timeline: next } };
    },
    known,
  );
  return { ...result.verdict, version: result.version };
}

/**
 * The commit point, just before a run's first Graph write: admits the event's intent, decides
 * again against every intent admitted so far, and records the writes it begins, in one
 * conditional write. An intent admitted after this point finds the writes begun (a cancellation
 * waits for the run, then sees them); one admitted before it supersedes the run here, before
 * anything is written.
 */
export async function commitWrites(
  store: TimelineStore,
  personId: string,
  intent: Intent,
  seen: Seen,
  actions: readonly ActionName[],
  at: string,
  known: KnownTimeline | undefined,
): Promise<{ verdict: Verdict; timeline: Timeline | undefined }> {
  const result = await update<Verdict>(
    store,
    personId,
    (current) => {
      const { next, standing } = admitted(current, intent, seen);
      const verdict = decide(next, standing);
      if (verdict.kind === 'superseded') return { next, verdict };
      return {
        next: withAttempted(next, actions, { at, ref: intent.ref, eventId: intent.eventId }),
        verdict,
      };
    },
    known,
  );
  return { verdict: result.verdict, timeline: result.value };
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
