import type { AccessCutoff } from './accessCutoff';
import { isAnnounced } from './lifecycle';
import { ErrorCodes } from './errors';
import { stableId } from './eventIdentity';
import { GuardrailSubjects, guardrailOfRecord } from './guardrail';
import { kindOfType } from './events';
import type { ActionName, ActionStatus, AuditRecord } from './ports';
import type { SignInSummary } from './signInWatch';

/**
 * A final audit record as a CloudEvents 1.0 event for the outcome topic (HR, ITSM, SIEM). Pure: the
 * adapter (shared/adapters/outcomeTopic.ts) only sends what this builds. See docs/outcomes.md.
 *
 * The data is built field by field from an allow-list, never by spreading the record: whatever is
 * added to the audit record later stays out of the event until someone adds it here on purpose.
 */

/** What a subscriber is told happened. A reinstatement that succeeded is `reinstated`. */
export const AnnouncedOutcomes = [
  'succeeded',
  'failed',
  'refused',
  'cancelled',
  'held',
  'discarded',
  'reinstated',
  'dry-run',
  'superseded',
  'delayed',
  /**
   * Not a record's outcome: the sign-in watch of a succeeded departure found a successful
   * sign-in after the access cut-off (SIGNIN_WATCH_ENABLED; see toWatchEvent).
   */
  'signin-after-cutoff',
] as const;
export type AnnouncedOutcome = (typeof AnnouncedOutcomes)[number];

/** The CloudEvents `source` of every outcome event (the pair source + id identifies an event). */
export const OUTCOME_EVENT_SOURCE = '/entra-offboarding/outcomes';
/** CloudEvents `type` prefix; the outcome completes it: `offboarding.outcome.succeeded`. */
export const OUTCOME_EVENT_TYPE_PREFIX = 'offboarding.outcome.';
/** The Service Bus content type of a structured-mode CloudEvent. */
export const OUTCOME_CONTENT_TYPE = 'application/cloudevents+json';
/** An error message is cut to this length: subscribers get the gist, the audit keeps the rest. */
export const OUTCOME_MESSAGE_MAX_CHARS = 500;

export interface OutcomeEventData {
  outcome: AnnouncedOutcome;
  /** The event this outcome is about, as its sender gave it (absent parts could not be read). */
  event: { source?: string; id: string; type?: string; time?: string };
  /** The message was not a valid event (outcome failed, error InvalidEvent). */
  invalidMessage?: true;
  ticket?: string;
  user?: { given?: string; objectId?: string; userPrincipalName?: string };
  dryRun: boolean;
  actions: { action: ActionName; status: ActionStatus; errorCode?: string }[];
  verification?: { verified: boolean; signInSessionsValidFrom?: string };
  /** When access is expected to end (a succeeded departure or MFA event with a verified revocation). */
  accessCutoff?: AccessCutoff;
  error?: { code: string; message?: string };
  /**
   * Why the event was held (outcome held): which guardrail, never its limit or count (a sender
   * who knew them could stay just under; operators read them in `offboard guardrail status`).
   */
  heldReason?: string;
  /** The later HR intent of the same person that superseded this event (outcome superseded). */
  supersededBy?: {
    source: string;
    id: string;
    kind: 'leave' | 'cancel' | 'reinstate';
    time: string;
  };
  /** A departure past its due time, still retrying (outcome delayed): since when it is announced so. */
  delayedSince?: string;
  /** Outcome signin-after-cutoff: what the sign-in watch found (see signInWatch.ts). */
  signInWatch?: {
    cutoffAt: string;
    checkedAt: string;
    window?: { from: string; to: string };
    successesAfterCutoff: number;
    failedAttempts: number;
    signIns: SignInSummary[];
  };
  /** When the audit recorded this outcome. */
  recordedAt: string;
}

/** A CloudEvents 1.0 structured event. `outcome` is an extension attribute (a String). */
export interface OutcomeEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject?: string;
  time: string;
  datacontenttype: 'application/json';
  outcome: AnnouncedOutcome;
  data: OutcomeEventData;
}

/** Service Bus application properties a subscription's SQL filter can use (`outcome = 'failed'`). */
export interface OutcomeProperties {
  [key: string]: string | boolean;
  outcome: AnnouncedOutcome;
  /** The original event's type (`employee.leaving`, `mfa.enabled`, ...); absent for an invalid message. */
  eventType: string;
  dryRun: boolean;
}

/** What the topic is told for a record's outcome. */
export function announcedOutcome(record: AuditRecord): AnnouncedOutcome | undefined {
  if (!isAnnounced(record)) return undefined;
  switch (record.outcome) {
    case 'succeeded':
      return kindOfType(record.eventType ?? '') === 'employee.reinstated'
        ? 'reinstated'
        : 'succeeded';
    case 'failed':
    case 'refused':
    case 'cancelled':
    case 'held':
    case 'discarded':
    case 'dry-run':
    case 'superseded':
    case 'delayed':
      return record.outcome;
    case 'in-progress':
    case 'scheduled':
      return undefined;
  }
}

/**
 * The id of what a record announces: the same record with the same outcome and error code is the
 * same id however often it is published (a redelivery, a duplicate), so subscribers and Service Bus
 * duplicate detection drop repeats; a different outcome later (a replay that succeeds, a held event
 * released) is a new id.
 */
export function outcomeEventId(record: AuditRecord, outcome: AnnouncedOutcome): string {
  return stableId(
    'outcome',
    record.identityKey,
    record.contentDigest,
    outcome,
    record.errorCode ?? '',
  );
}

/** The HR event an outcome is about, as every outcome event names it. */
function eventOf(record: AuditRecord): OutcomeEventData['event'] {
  return {
    ...(record.source === undefined ? {} : { source: record.source }),
    id: record.eventId,
    ...(record.eventType === undefined ? {} : { type: record.eventType }),
    ...(record.eventTime === undefined ? {} : { time: record.eventTime }),
  };
}

/** Each action's status and error code (their messages stay in the audit). */
function actionsOf(record: AuditRecord): OutcomeEventData['actions'] {
  return record.actions.map((a) => ({
    action: a.action,
    status: a.status,
    ...(a.errorCode === undefined ? {} : { errorCode: a.errorCode }),
  }));
}

/** The outcome event of an announced record (final, or delayed); undefined otherwise. */
export function toOutcomeEvent(record: AuditRecord): OutcomeEvent | undefined {
  const outcome = announcedOutcome(record);
  if (outcome === undefined) return undefined;
  const invalid = record.contentDigest === 'invalid';
  const subject = record.objectId ?? record.userPrincipalName ?? record.user;
  const data: OutcomeEventData = {
    outcome,
    event: eventOf(record),
    ...(invalid ? { invalidMessage: true as const } : {}),
    ...(record.ticket === undefined ? {} : { ticket: record.ticket }),
    ...(userOf(record) ?? {}),
    dryRun: record.dryRun,
    actions: actionsOf(record),
    ...(record.verification === undefined
      ? {}
      : {
          verification: {
            verified: record.verification.verified,
            ...(record.verification.signInSessionsValidFrom === undefined
              ? {}
              : { signInSessionsValidFrom: record.verification.signInSessionsValidFrom }),
          },
        }),
    ...(record.accessCutoff === undefined ? {} : { accessCutoff: cutoffOf(record.accessCutoff) }),
    ...(record.errorCode === undefined
      ? {}
      : {
          error: {
            code: record.errorCode,
            ...(record.errorMessage === undefined
              ? {}
              : { message: PUBLIC_MESSAGES[record.errorCode] ?? shorten(record.errorMessage) }),
          },
        }),
    ...(record.guardrail?.heldReason === undefined ? {} : { heldReason: heldReasonOf(record) }),
    ...(record.outcome === 'superseded' && record.supersededBy !== undefined
      ? {
          supersededBy: {
            source: record.supersededBy.source,
            id: record.supersededBy.eventId,
            kind: record.supersededBy.kind,
            time: record.supersededBy.at,
          },
        }
      : {}),
    ...(record.outcome === 'delayed' && record.delayedAt !== undefined
      ? { delayedSince: record.delayedAt }
      : {}),
    recordedAt: record.lastAttemptAt,
  };
  return {
    specversion: '1.0',
    id: outcomeEventId(record, outcome),
    source: OUTCOME_EVENT_SOURCE,
    type: `${OUTCOME_EVENT_TYPE_PREFIX}${outcome}`,
    ...(subject === undefined ? {} : { subject }),
    time: record.lastAttemptAt,
    datacontenttype: 'application/json',
    outcome,
    data,
  };
}

/** The application properties of an outcome event's message. */
export function outcomeProperties(event: OutcomeEvent): OutcomeProperties {
  return {
    outcome: event.outcome,
    eventType: event.data.event.type ?? '',
    dryRun: event.data.dryRun,
    ...(event.data.error === undefined ? {} : { errorCode: event.data.error.code }),
  };
}

function userOf(record: AuditRecord): Pick<OutcomeEventData, 'user'> | undefined {
  const user = {
    ...(record.user === undefined ? {} : { given: record.user }),
    ...(record.objectId === undefined ? {} : { objectId: record.objectId }),
    ...(record.userPrincipalName === undefined
      ? {}
      : { userPrincipalName: record.userPrincipalName }),
  };
  return Object.keys(user).length === 0 ? undefined : { user };
}

function cutoffOf(cutoff: AccessCutoff): AccessCutoff {
  return {
    ...(cutoff.caeAppsBy === undefined ? {} : { caeAppsBy: cutoff.caeAppsBy }),
    ...(cutoff.otherAppsBy === undefined ? {} : { otherAppsBy: cutoff.otherAppsBy }),
    note: cutoff.note,
  };
}

/**
 * Errors whose audit message says more than subscribers may know: the topic gets this instead.
 * UserChanged names the object that holds the UPN now (someone other than the leaver).
 */
const PUBLIC_MESSAGES: Readonly<Record<string, string>> = {
  [ErrorCodes.UserChanged]:
    'The user named by the event now resolves to another directory object than an earlier attempt of this event did: nothing was written. Check who is leaving and resend the event with the object id (offboard audit --event ID shows the record).',
};

/** Which guardrail held the event and what happens next, without its limit or count. */
function heldReasonOf(record: AuditRecord): string {
  const name = guardrailOfRecord(record);
  const what = name === undefined ? 'events' : GuardrailSubjects[name];
  return `The blast-radius guardrail for ${what} is tripped: nothing was written. Held until an operator releases or discards it.`;
}

function shorten(text: string): string {
  return text.length <= OUTCOME_MESSAGE_MAX_CHARS
    ? text
    : `${text.slice(0, OUTCOME_MESSAGE_MAX_CHARS - 1)}…`;
}

/**
 * The incident of a departure's sign-in watch: a successful sign-in after the access cut-off,
 * announced once per departure (by the check that found it first; its id is the same whatever
 * brings the check back). Built from the record after the finding was written, field by field.
 * undefined when the record has no announced incident.
 */
export function toWatchEvent(record: AuditRecord): OutcomeEvent | undefined {
  const watch = record.signInWatch;
  const by = watch?.announcedBy;
  const finding = by === undefined ? undefined : watch?.checks[by]?.result;
  if (watch === undefined || finding?.verdict !== 'signin-after-cutoff') return undefined;
  const outcome = 'signin-after-cutoff' as const;
  const subject = record.objectId ?? record.userPrincipalName ?? record.user;
  const recordedAt = watch.announcedAt ?? finding.checkedAt;
  return {
    specversion: '1.0',
    id: stableId('outcome', record.identityKey, record.contentDigest, outcome),
    source: OUTCOME_EVENT_SOURCE,
    type: `${OUTCOME_EVENT_TYPE_PREFIX}${outcome}`,
    ...(subject === undefined ? {} : { subject }),
    time: recordedAt,
    datacontenttype: 'application/json',
    outcome,
    data: {
      outcome,
      event: eventOf(record),
      ...(record.ticket === undefined ? {} : { ticket: record.ticket }),
      ...(userOf(record) ?? {}),
      dryRun: record.dryRun,
      actions: actionsOf(record),
      ...(record.accessCutoff === undefined ? {} : { accessCutoff: cutoffOf(record.accessCutoff) }),
      signInWatch: {
        cutoffAt: watch.cutoffAt,
        checkedAt: finding.checkedAt,
        ...(finding.window === undefined ? {} : { window: { ...finding.window } }),
        successesAfterCutoff: finding.successesAfterCutoff ?? 0,
        failedAttempts: finding.failedAttempts ?? 0,
        // Already summaries (signInWatch.ts keeps only the fields the event names).
        signIns: (finding.signIns ?? []).map((s) => ({ ...s })),
      },
      recordedAt,
    },
  };
}
