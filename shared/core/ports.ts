import type { AccessCutoff } from './accessCutoff';
import type { ActionName } from './actions';
import type { Secret } from './password';
import type { UserRef } from './userRef';

/** The user as the directory knows it (the properties the adapter $selects). */
export interface DirectoryUser {
  id: string;
  userPrincipalName: string;
  userType: string | null;
  onPremisesSyncEnabled: boolean | null;
  signInSessionsValidFromDateTime: string | null;
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
}

export type { ActionName } from './actions';

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
export type Outcome =
  'in-progress' | 'succeeded' | 'failed' | 'refused' | 'dry-run' | 'scheduled' | 'cancelled';

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
  /** The event's own `time` (when HR says it happened): reports measure latency from it. */
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
  firstAttemptAt: string;
  lastAttemptAt: string;
}

/** A record with the version it was read at (the table's ETag). */
export interface StoredRecord {
  record: AuditRecord;
  etag: string;
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
}

/** The settings that guard people, as the use case needs them. */
export interface PolicyConfig {
  /** Lower-cased object ids and UPNs that are never written to. */
  protectedUsers: ReadonlySet<string>;
  /** Evaluate and audit, write nothing to Graph. */
  dryRun: boolean;
}
