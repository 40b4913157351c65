import type { AccessCutoff } from './accessCutoff';
import type { ActionName } from './actions';
import type { Secret } from './password';
import type { SignInEntry, SignInWatch } from './signInWatch';
import type { Timeline } from './timeline';
import type { UserRef } from './userRef';

/** The user as the directory knows it (the properties the adapter $selects). */
export interface DirectoryUser {
  id: string;
  userPrincipalName: string;
  userType: string | null;
  onPremisesSyncEnabled: boolean | null;
  signInSessionsValidFromDateTime: string | null;
  /** Read on every resolve: the person's timeline notes what it saw (see timeline.ts). */
  accountEnabled: boolean | null;
}

export interface DirectoryCall {
  /** Graph `request-id`, kept in the audit for support cases. */
  requestId?: string;
}

/** What the use cases need from Microsoft Graph. Failures are OffboardingErrors. */
export interface Directory {
  getUser(ref: UserRef): Promise<DirectoryCall & { user: DirectoryUser }>;
  revokeSignInSessions(userId: string): Promise<DirectoryCall>;
  disableAccount(userId: string): Promise<DirectoryCall>;
  /** Re-enables an account (a reinstatement); the same permission as disableAccount. */
  enableAccount(userId: string): Promise<DirectoryCall>;
  resetPassword(userId: string, password: Secret): Promise<DirectoryCall>;
  /** Enabled user accounts in the tenant (the guardrail's optional share-of-tenant limit). */
  countEnabledUsers(): Promise<number>;
}

export type { ActionName } from './actions';

/** One page of the sign-in log (GET /auditLogs/signIns), and the link to the next. */
export interface SignInPage {
  signIns: SignInEntry[];
  /** Entries of the page that could not be read (no id, time or status): never judged. */
  unreadable?: number;
  /** `@odata.nextLink`, absolute, as Graph sent it; absent on the last page. */
  nextLink?: string;
}

/**
 * The Entra sign-in log (read-only; AuditLog.Read.All; the tenant needs Entra ID P1 or P2). A
 * tenant without the licence fails with ErrorCodes.NoPremiumLicence. Not behind the Graph write
 * budget: its reads have their own limits, and its 429s must not slow revocations down.
 */
export interface SignInLog {
  /** The first page of a user's sign-ins created in [from, to]. */
  listSignIns(userId: string, from: string, to: string): Promise<SignInPage>;
  /** A following page (the nextLink of the previous one). */
  nextSignIns(nextLink: string): Promise<SignInPage>;
}

export type ActionStatus = 'succeeded' | 'failed' | 'would-run' | 'not-attempted';

export interface ActionResult {
  action: ActionName;
  status: ActionStatus;
  errorCode?: string;
  message?: string;
  requestId?: string;
}

/**
 * Where an event stands. `in-progress` is a record created by a run's claim before it has an
 * outcome; every other value is what the last run recorded.
 */
export const Outcomes = [
  'in-progress',
  'succeeded',
  'failed',
  'refused',
  'dry-run',
  'scheduled',
  'cancelled',
  /** The blast-radius guardrail tripped: nothing was written; an operator releases or discards it. */
  'held',
  /** An operator discarded a held event (`offboard guardrail discard`): it will never run. */
  'discarded',
  /**
   * A later HR intent for the same person (a cancellation, a reinstatement, a newer departure)
   * came first: nothing was written, whatever path brings the event back (see timeline.ts).
   */
  'superseded',
  /**
   * A departure past its due time that is still being retried (Graph throttling or down): announced
   * once, so the alert fires; it still completes when Graph recovers.
   */
  'delayed',
] as const;
export type Outcome = (typeof Outcomes)[number];

export interface Verification {
  verified: boolean;
  /** signInSessionsValidFromDateTime read back after the revocation. */
  signInSessionsValidFrom?: string;
  /** The value before the revocation. */
  previousSignInSessionsValidFrom?: string;
}

/**
 * Where a record lives. An event is identified by its route (which queue's kinds it is), its
 * CloudEvents `source` and its `id`: that triple is `identityKey`. `contentDigest` is a digest of
 * what the event asks for (kind, user, actions, leave date), so one id reused for different content
 * is a different record and never inherits another event's outcome. An invalid message has a key of
 * its own, derived from its message id, and never touches an event's record.
 */
export interface RecordKey {
  identityKey: string;
  contentDigest: string;
}

/** The one record per event (identity and content). Arrays are stored as JSON by the table adapter. */
export interface AuditRecord extends RecordKey {
  eventId: string;
  eventType?: string;
  source?: string;
  /** The event's own `time` (when HR says it happened): the producer's word, shown, never measured from. */
  eventTime?: string;
  /** The route (function) the event belongs to: employeeLeaving or mfaEnabled. */
  route?: string;
  /** data.user as the event gave it. */
  user?: string;
  objectId?: string;
  userPrincipalName?: string;
  requestedActions: ActionName[];
  actions: ActionResult[];
  verification?: Verification;
  /** When access is expected to end (set on a succeeded record with a verified revocation). */
  accessCutoff?: AccessCutoff;
  graphRequestIds: string[];
  outcome: Outcome;
  errorCode?: string;
  errorMessage?: string;
  retryable?: boolean;
  notes: string[];
  reason?: string;
  ticket?: string;
  dryRun: boolean;
  /** Runs that reached Graph or a decision (claims that were deferred do not count). */
  attempts: number;
  /** Of those, runs that ended in a wait Graph asked for (429, Retry-After): they use no attempt. */
  waits?: number;
  /** Deliveries of this event that found it already finished (or already scheduled). */
  duplicates: number;
  lastDuplicateAt?: string;
  /** The event id was used before with different content (another record under the same identity). */
  idReused?: boolean;
  /** Message id of the delivery that produced this record. */
  messageId?: string;
  /** Scheduled leave date and the Service Bus sequence number holding it. */
  effectiveAt?: string;
  scheduledSequenceNumber?: string;
  /** When the next delayed retry is due (transient failure). */
  nextAttemptAt?: string;
  /** The run that holds the event now, and until when (a lease: no other run writes to Graph meanwhile). */
  claimedBy?: string;
  claimExpiresAt?: string;
  /** The blast-radius guardrail's marks on this event (see guardrail.ts). */
  guardrail?: GuardrailMark;
  /** The later HR intent that superseded this event (outcome `superseded`). */
  supersededBy?: SupersedingIntent;
  /** When this departure was first announced as delayed (past its due time, still retrying). */
  delayedAt?: string;
  /** An operator who forced this run (`offboard reinstate --force`): who, why, when. */
  forcedBy?: OperatorDecision;
  /** The sign-in watch of a succeeded departure (SIGNIN_WATCH_ENABLED): its checks and findings. */
  signInWatch?: SignInWatch;
  firstAttemptAt: string;
  lastAttemptAt: string;
}

/** The HR intent that superseded an event, as its record names it. */
export interface SupersedingIntent {
  eventId: string;
  source: string;
  kind: 'leave' | 'cancel' | 'reinstate';
  /** The superseding event's time (its own `time`, else when the app first saw it). */
  at: string;
}

/** An operator's decision, as the audit keeps it: who, why, when. */
export interface OperatorDecision {
  by: string;
  reason: string;
  at: string;
}

/** What the guardrail did with one event. */
export interface GuardrailMark {
  /** Counted against the window (or an approval) at this time: later attempts are not counted again. */
  admittedAt?: string;
  /** The approval it ran under: a wave id sent by `offboard enqueue`, or a release. */
  approval?: string;
  /** Held: why, and the event as delivered (so a release can send it again; it holds no secret). */
  heldAt?: string;
  heldReason?: string;
  heldEvent?: string;
  /** This event tripped the guardrail (reports count trips from it). */
  tripped?: boolean;
  /** `offboard guardrail release`: the approval id its released copy carries. */
  release?: OperatorDecision & { approvalId: string };
  /** `offboard guardrail discard`. */
  discard?: OperatorDecision;
}

/**
 * Told of every final record once it is written: the immutable audit log, the outcome topic. At
 * least once: when a sink fails, the delivery comes back and the record is given again, so a sink
 * must accept the same record twice (its consumers de-duplicate on the record's identity).
 */
export interface FinalRecordSink {
  /** What it is, for errors and logs ("immutable audit log", "outcome topic"). */
  readonly name: string;
  accept(record: AuditRecord): Promise<void>;
  /**
   * Gets ready for the first record without writing anything: loads what it needs and opens its
   * connection, so a cold start does that while it waits for other answers. May fail; the record
   * itself is what counts (`accept` reports its own failures).
   */
  warmUp?(): Promise<void>;
}

/** A record with the version it was read at (the table's ETag). */
export interface StoredRecord {
  record: AuditRecord;
  etag: string;
  /** When the store last changed it, by the store's own clock (no writer sets it); when known. */
  modifiedAt?: string;
}

/**
 * Durable audit store. Writes are conditional: `create` only if absent, `replace` only if the record
 * is still at the version read. Both return undefined when the condition fails, so the caller
 * re-reads and decides again (see auditRecords.ts, the one writer).
 */
export interface AuditLog {
  read(key: RecordKey): Promise<StoredRecord | undefined>;
  create(record: AuditRecord): Promise<StoredRecord | undefined>;
  replace(record: AuditRecord, etag: string): Promise<StoredRecord | undefined>;
  /** Every record of one identity (the same event id used for different content). */
  listIdentity(identityKey: string): Promise<AuditRecord[]>;
  /** Records for a user, matched on object id, UPN or the identifier the event gave. */
  findByUser(userIdOrUpn: string): Promise<StoredRecord[]>;
  /** Records carrying this CloudEvents id (from any source or route). */
  findByEventId(eventId: string): Promise<AuditRecord[]>;
  /** Records whose last attempt was at or after `since` (for reports). */
  listSince(since: Date): Promise<AuditRecord[]>;
  /** Records with this outcome, oldest first (held events for the guardrail commands). */
  listByOutcome(outcome: Outcome): Promise<StoredRecord[]>;
}

/** The settings that guard people, as the use case needs them. */
export interface PolicyConfig {
  /** Lower-cased object ids and UPNs that are never written to. */
  protectedUsers: ReadonlySet<string>;
  /** Evaluate and audit, write nothing to Graph. */
  dryRun: boolean;
}

/** A person's timeline with the version it was read at (the table's ETag). */
export interface StoredTimeline {
  timeline: Timeline;
  etag: string;
}

/**
 * Durable store of the person timelines (see timeline.ts), written like the audit: `create` only if
 * absent, `replace` only at the version read; both return undefined when the condition fails.
 */
export interface TimelineStore {
  read(personId: string): Promise<StoredTimeline | undefined>;
  create(timeline: Timeline): Promise<StoredTimeline | undefined>;
  replace(timeline: Timeline, etag: string): Promise<StoredTimeline | undefined>;
}
