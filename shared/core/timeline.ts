import type { ActionName } from './actions';
import type { EventKind, OffboardingEvent } from './events';
import type { RecordKey, SupersedingIntent } from './ports';

/*
 * One person, one timeline. A departure is a story over days (leave, cancel, reinstate, dead-letter,
 * replay); each event is one chapter. The timeline keeps, per person (resolved object id), the HR
 * intents in the order of their own time and what this app did to the account, and one rule
 * (`decide`) says whether an event may still write. Pure: the shell (personTimeline.ts) reads it
 * with its ETag, decides, and writes it back conditionally.
 */

export type IntentKind = SupersedingIntent['kind'];

/** How a note or an operator's listing names an intent. */
export const IntentNames: Record<IntentKind, string> = {
  leave: 'a departure',
  cancel: 'a cancellation',
  reinstate: 'a reinstatement',
};

/** One HR intent about the person. */
export interface Intent {
  /** The event's audit record (identity key and content digest): one intent per record. */
  ref: string;
  eventId: string;
  source: string;
  kind: IntentKind;
  /** The event's own `time`, else when the app first saw it (ISO, UTC). */
  at: string;
  /**
   * The writes runs of this event began (at their commit point): made, failed, or unknown to
   * the record if the run ended without recording them. Kept when a later event writes again.
   */
  attempted?: ActionName[];
}

/** A change this app made to the account. */
export interface AppChange {
  at: string;
  /** The event (record ref and id) that made it. */
  ref: string;
  eventId: string;
}

/** The account as this app read it, when that disagreed with the app's own last change. */
export interface OutsideChange {
  accountEnabled: boolean;
  at: string;
}

export interface Timeline {
  /** Lower-cased object id. */
  personId: string;
  /** HR intents, oldest first (see `isLater`); at most MAX_INTENTS, the latest kept. */
  intents: Intent[];
  /** The last time this app made each change. */
  applied: Partial<Record<ActionName, AppChange>>;
  /** The last read that found the account other than this app left it (someone else acted). */
  changedOutside?: OutsideChange;
}

/** Intents kept per person. Dropping older ones never changes a verdict: a kept one is later. */
export const MAX_INTENTS = 50;

/** The HR intent an event kind stands for; MFA events are not part of the person's HR story. */
export function intentKindOf(kind: EventKind): IntentKind | undefined {
  switch (kind) {
    case 'employee.leaving':
      return 'leave';
    case 'employee.leaving.cancelled':
      return 'cancel';
    case 'employee.reinstated':
      return 'reinstate';
    case 'mfa.enabled':
      return undefined;
  }
}

/**
 * The intent an event stands for on its person's timeline (undefined: not an HR intent). It stands
 * at the event's own `time`; without one, at when it was first seen (the earliest of `seen`, else
 * `fallback`), so a replay or a run by hand of an old event never counts as new.
 */
export function intentOfEvent(
  event: OffboardingEvent,
  key: RecordKey,
  seen: readonly (string | undefined)[],
  fallback: Date,
): Intent | undefined {
  const kind = intentKindOf(event.kind);
  if (kind === undefined) return undefined;
  const firstSeen = seen
    .filter((t): t is string => t !== undefined && !Number.isNaN(Date.parse(t)))
    .map((t) => new Date(t).toISOString())
    .sort()[0];
  const at =
    event.time !== undefined
      ? new Date(event.time).toISOString()
      : (firstSeen ?? fallback.toISOString());
  return {
    ref: `${key.identityKey}/${key.contentDigest}`,
    eventId: event.id,
    source: event.source,
    kind,
    at,
  };
}

/**
 * At equal times a cancellation or reinstatement comes after a departure: it can only be about a
 * departure that existed (HR systems that stamp whole days or seconds send both with one time).
 */
const RANK: Record<IntentKind, number> = { leave: 0, cancel: 1, reinstate: 1 };

/** Whether `a` comes after `b`: by time, then kind (above), then source and event id. */
export function isLater(a: Intent, b: Intent): boolean {
  const ta = Date.parse(a.at);
  const tb = Date.parse(b.at);
  if (ta !== tb) return ta > tb;
  if (RANK[a.kind] !== RANK[b.kind]) return RANK[a.kind] > RANK[b.kind];
  return `${a.source}\n${a.eventId}` > `${b.source}\n${b.eventId}`;
}

export function emptyTimeline(personId: string): Timeline {
  return { personId: personId.toLowerCase(), intents: [], applied: {} };
}

export type Verdict = { kind: 'may-write' } | { kind: 'superseded'; by: Intent };

/**
 * The one rule: an event writes only while it is the person's latest HR intent. Any later intent
 * supersedes it: a cancellation or reinstatement supersedes earlier departures (scheduled, failed,
 * dead-lettered, held or not yet arrived), a newer departure supersedes older ones and any
 * cancellation before it. The verdict names the latest intent, the one that stands.
 */
export function decide(timeline: Timeline, intent: Intent): Verdict {
  const latest = timeline.intents.reduce<Intent | undefined>(
    (found, other) =>
      other.ref !== intent.ref && isLater(other, intent) && (!found || isLater(other, found))
        ? other
        : found,
    undefined,
  );
  return latest === undefined ? { kind: 'may-write' } : { kind: 'superseded', by: latest };
}

/** The timeline with this intent in it (once per record; its first-seen time stays). */
export function withIntent(timeline: Timeline, intent: Intent): Timeline {
  if (timeline.intents.some((i) => i.ref === intent.ref)) return timeline;
  const intents = [...timeline.intents, intent].sort((a, b) =>
    isLater(a, b) ? 1 : isLater(b, a) ? -1 : 0,
  );
  return { ...timeline, intents: intents.slice(-MAX_INTENTS) };
}

/** The intent the timeline holds for this record, if any (its time as first seen). */
export function intentOf(timeline: Timeline, ref: string): Intent | undefined {
  return timeline.intents.find((i) => i.ref === ref);
}

/**
 * The timeline after a run's commit point: the writes it is about to make count as this app's
 * changes from now (a write that then fails shows as a disagreeing read later, which only makes a
 * reinstatement more careful), and the event's intent keeps which writes it began.
 */
export function withAttempted(
  timeline: Timeline,
  actions: readonly ActionName[],
  change: AppChange,
): Timeline {
  const intents = timeline.intents.map((i) =>
    i.ref !== change.ref
      ? i
      : { ...i, attempted: [...new Set([...(i.attempted ?? []), ...actions])] },
  );
  const applied = { ...timeline.applied };
  for (const action of actions) {
    const before = applied[action];
    if (before === undefined || before.at < change.at) applied[action] = change;
  }
  return { ...timeline, intents, applied };
}

/** The writes runs of the event with this record ref began, as far as the timeline knows. */
export function attemptedBy(timeline: Timeline | undefined, ref: string): readonly ActionName[] {
  return timeline?.intents.find((i) => i.ref === ref)?.attempted ?? [];
}

/** Whether this app's last change to the account left it disabled (undefined: never changed it). */
export function appLeftDisabled(timeline: Timeline): boolean | undefined {
  const { disableAccount, enableAccount } = timeline.applied;
  if (disableAccount === undefined && enableAccount === undefined) return undefined;
  if (enableAccount === undefined) return true;
  if (disableAccount === undefined) return false;
  return disableAccount.at > enableAccount.at;
}

/** The last change this app made to whether the account is enabled. */
export function lastAccountChange(timeline: Timeline): AppChange | undefined {
  const { disableAccount, enableAccount } = timeline.applied;
  if (disableAccount === undefined) return enableAccount;
  if (enableAccount === undefined) return disableAccount;
  return disableAccount.at > enableAccount.at ? disableAccount : enableAccount;
}

/**
 * The timeline after a read of the account: a read that disagrees with this app's last change,
 * made after it, means someone else changed the account since.
 */
export function withSeen(timeline: Timeline, accountEnabled: boolean | null, at: string): Timeline {
  if (accountEnabled === null) return timeline;
  const leftDisabled = appLeftDisabled(timeline);
  const last = lastAccountChange(timeline);
  if (leftDisabled === undefined || last === undefined || at <= last.at) return timeline;
  if (accountEnabled === !leftDisabled) return timeline;
  return { ...timeline, changedOutside: { accountEnabled, at } };
}

/** Someone else changed the account after this app's last change to it. */
export function changedOutsideSince(timeline: Timeline): OutsideChange | undefined {
  const last = lastAccountChange(timeline);
  const outside = timeline.changedOutside;
  return outside !== undefined && last !== undefined && outside.at > last.at ? outside : undefined;
}

/** How a record names the intent that superseded it. */
export function supersedingOf(intent: Intent): SupersedingIntent {
  return { eventId: intent.eventId, source: intent.source, kind: intent.kind, at: intent.at };
}
