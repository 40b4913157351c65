import type { Secret } from './password';
import type { UserRef } from './userRef';

/** The user as the directory knows it (the properties the adapter $selects). */
export interface DirectoryUser {
  id: string;
  userPrincipalName: string;
  accountEnabled: boolean | null;
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
  resetPassword(userId: string, password: Secret): Promise<DirectoryCall>;
}

export const ActionNames = ['disableAccount', 'resetPassword', 'revokeSignInSessions'] as const;
export type ActionName = (typeof ActionNames)[number];

export type ActionStatus = 'succeeded' | 'failed' | 'would-run' | 'not-attempted';

export interface ActionResult {
  action: ActionName;
  status: ActionStatus;
  errorCode?: string;
  message?: string;
  requestId?: string;
}

export type Outcome = 'succeeded' | 'failed' | 'refused' | 'dry-run' | 'scheduled' | 'cancelled';

export interface Verification {
  verified: boolean;
  /** signInSessionsValidFromDateTime read back after the revocation. */
  signInSessionsValidFrom?: string;
  /** The value before the revocation. */
  previousSignInSessionsValidFrom?: string;
}

/** The one final record per event id. Arrays are stored as JSON by the table adapter. */
export interface AuditRecord {
  eventId: string;
  eventType?: string;
  source?: string;
  /** data.user as the event gave it. */
  user?: string;
  objectId?: string;
  userPrincipalName?: string;
  requestedActions: ActionName[];
  actions: ActionResult[];
  verification?: Verification;
  graphRequestIds: string[];
  outcome: Outcome;
  errorCode?: string;
  errorMessage?: string;
  retryable?: boolean;
  notes: string[];
  reason?: string;
  ticket?: string;
  dryRun: boolean;
  attempts: number;
  duplicates: number;
  lastDuplicateAt?: string;
  /** Message id of the delivery that produced this record. */
  messageId?: string;
  /** Scheduled leave date and the Service Bus sequence number holding it. */
  effectiveAt?: string;
  scheduledSequenceNumber?: string;
  /** When the next delayed retry is due (transient failure). */
  nextAttemptAt?: string;
  firstAttemptAt: string;
  lastAttemptAt: string;
}

/** Durable audit store; one record per event id, replaced as the event progresses. */
export interface AuditLog {
  get(eventId: string): Promise<AuditRecord | undefined>;
  put(record: AuditRecord): Promise<void>;
  /** Counts a repeat delivery of an event that already succeeded. */
  recordDuplicate(eventId: string, at: string): Promise<void>;
  /** Records for a user, matched on object id, UPN or the identifier the event gave. */
  findByUser(userIdOrUpn: string): Promise<AuditRecord[]>;
}
