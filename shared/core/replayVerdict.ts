import { actionsOf, decideClaim } from './claim';
import { toOffboardingError } from './errors';
import { eventKey } from './eventIdentity';
import { parseEvent, type OffboardingEvent } from './events';
import { parseWatchMessage } from './signInWatch';
import { isProtected } from './flow';
import type {
  AuditLog,
  AuditRecord,
  Outcome,
  PolicyConfig,
  SupersedingIntent,
  TimelineStore,
} from './ports';
import { Routes, type RouteName } from './routes';
import {
  IntentNames,
  decide,
  emptyTimeline,
  intentOf,
  intentOfEvent,
  supersedingOf,
  type Timeline,
} from './timeline';

/*
 * What the app will decide about a dead-lettered message when it comes back (`offboard dlq list`,
 * `dlq replay`). Pure and read-only: the same rules the use case applies, in its order (parse,
 * claim, protected, the person's timeline), asked of what the audit and the timeline hold now. The
 * app decides again when the copy runs; this only tells the operator what to expect.
 */

export type ReplayVerdict =
  | { kind: 'invalid'; reason: string }
  /** The event's record has ended (succeeded, cancelled, superseded, discarded): nothing again. */
  | { kind: 'duplicate'; outcome: Outcome }
  /** Held by the guardrail: it runs or ends by an operator's decision. */
  | { kind: 'held' }
  /** A run holds the event right now. */
  | { kind: 'busy' }
  | { kind: 'protected' }
  /** An HR intent whose person is not known yet (given by UPN, never resolved). */
  | { kind: 'unresolved' }
  | { kind: 'superseded'; by: SupersedingIntent }
  | { kind: 'runs' }
  /** The audit or the timeline could not be read. */
  | { kind: 'unknown'; reason: string }
  /** Not an HR event: a check of a departure's sign-in watch (signInWatch.ts). */
  | { kind: 'watch-check'; check: number };

export interface ReplayCase {
  /** The message as the function reads it: the event, or why it is invalid. */
  parsed: { event: OffboardingEvent } | { invalid: string };
  policy: PolicyConfig;
  /** The event's own audit record (its identity and content), if it has one. */
  record: AuditRecord | undefined;
  /** The person's timeline (personOf), when the person is known; undefined when not. */
  timeline: Timeline | undefined;
  now: Date;
}

/**
 * The person an event is about, when known without asking Graph: the object id it gives, else the
 * one an earlier attempt resolved it to. Never a guess from a UPN.
 */
export function personOf(
  event: OffboardingEvent,
  record: AuditRecord | undefined,
): string | undefined {
  return event.user.kind === 'objectId' ? event.user.value : record?.objectId;
}

/** The verdict, from what the audit and the timeline hold. */
export function replayVerdict(c: ReplayCase): ReplayVerdict {
  if ('invalid' in c.parsed) return { kind: 'invalid', reason: c.parsed.invalid };
  const { event } = c.parsed;
  const key = eventKey(event, actionsOf(event));
  // The claim the copy will meet: a replay is a new message, never a redelivery.
  const claim = decideClaim(c.record, {
    event,
    key,
    actions: actionsOf(event),
    // Only its message id matters here: a replay's copy has a new one.
    delivery: { body: undefined, route: 'command', messageId: 'replay-verdict' },
    runId: 'replay-verdict',
    startedAt: c.now,
    dryRun: c.policy.dryRun,
    decision: 'unknown',
  });
  if (claim.verdict === 'duplicate' && c.record !== undefined)
    return { kind: 'duplicate', outcome: c.record.outcome };
  if (claim.verdict === 'held') return { kind: 'held' };
  if (claim.verdict === 'busy') return { kind: 'busy' };
  const { record } = c;
  if (isProtected(c.policy, event.user.value, record?.objectId, record?.userPrincipalName))
    return { kind: 'protected' };
  // Without a `time`, the copy stands where the app first saw the event (its record), else now:
  // the copy is enqueued now.
  const intent = intentOfEvent(event, key, [record?.firstAttemptAt], c.now);
  if (intent === undefined) return { kind: 'runs' };
  const person = personOf(event, record);
  if (person === undefined) return { kind: 'unresolved' };
  const timeline = c.timeline ?? emptyTimeline(person);
  // Its first-seen place stays, as when the app admits it.
  const verdict = decide(timeline, intentOf(timeline, intent.ref) ?? intent);
  return verdict.kind === 'superseded'
    ? { kind: 'superseded', by: supersedingOf(verdict.by) }
    : { kind: 'runs' };
}

/** What an operator reads. */
export function describeVerdict(verdict: ReplayVerdict): string {
  switch (verdict.kind) {
    case 'invalid':
      return `invalid: ${verdict.reason}`;
    case 'duplicate':
      return `already ${verdict.outcome}: a duplicate, nothing is done again`;
    case 'held':
      return 'held by the guardrail: runs or ends by an operator decision';
    case 'busy':
      return 'a run holds the event now: it comes back after';
    case 'protected':
      return 'protected account: will be refused';
    case 'unresolved':
      return 'not yet resolved: the timeline is checked when it runs';
    case 'superseded':
      return `superseded by ${IntentNames[verdict.by.kind]} (${verdict.by.source}, ${verdict.by.eventId}) at ${verdict.by.at}`;
    case 'runs':
      return 'runs';
    case 'unknown':
      return `unknown (${verdict.reason}): decided when it runs`;
    case 'watch-check':
      return `a sign-in watch check (check ${verdict.check + 1} of its departure): it runs if the departure's record has no result for it yet, else nothing is done again`;
  }
}

/** A dead-lettered message as the verdict needs it. */
export interface DeadLetteredEvent {
  /** The body in its content mode, as the function reads it (events.ts eventMessage). */
  body: unknown;
  route: RouteName;
}

/**
 * Reads the event's record and its person's timeline, and decides. A store that cannot be read
 * gives `unknown`: the app still decides when the copy runs.
 */
export async function replayVerdictOf(
  deps: { audit: AuditLog; timelines: TimelineStore; policy: PolicyConfig },
  message: DeadLetteredEvent,
  now: Date,
): Promise<ReplayVerdict> {
  // A sign-in watch check travels on the departures queue (the handler reads it the same way).
  const watch = message.route === 'employeeLeaving' ? parseWatchMessage(message.body) : undefined;
  if (watch !== undefined) return { kind: 'watch-check', check: watch.check };
  let event: OffboardingEvent;
  try {
    event = parseEvent(message.body, Routes[message.route].accepts);
  } catch (error) {
    return { kind: 'invalid', reason: toOffboardingError(error).message };
  }
  const base = { parsed: { event }, policy: deps.policy, now };
  try {
    const record = (await deps.audit.read(eventKey(event, actionsOf(event))))?.record;
    const person = personOf(event, record);
    const timeline =
      person === undefined
        ? undefined
        : (await deps.timelines.read(person.toLowerCase()))?.timeline;
    return replayVerdict({ ...base, record, timeline });
  } catch (error) {
    return { kind: 'unknown', reason: toOffboardingError(error).message };
  }
}
