/**
 * In-memory fakes of the core's ports, for fast unit tests of the use case and the settlement.
 * Each one behaves as its real adapter does at the port (shared/adapters/tableAuditLog.ts,
 * graphDirectory.ts, serviceBusScheduler.ts) and as the platform facts say Table Storage, Graph
 * and Service Bus behave, so a rule that passes here holds against the real SDKs too. Nothing
 * here sleeps: time is a clock the test moves.
 */
import { ErrorCodes, OffboardingError, type ErrorCode } from '../../shared/core/errors';
import type { OutgoingMessage, Scheduler } from '../../shared/core/messaging';
import { Secret } from '../../shared/core/password';
import type {
  AuditLog,
  AuditRecord,
  Directory,
  DirectoryCall,
  DirectoryUser,
  Outcome,
  RecordKey,
  StoredRecord,
  StoredTimeline,
  TimelineStore,
} from '../../shared/core/ports';
import type { Timeline } from '../../shared/core/timeline';
import type { UserRef } from '../../shared/core/userRef';
import type {
  EventDecision,
  GuardrailName,
  GuardrailState,
  GuardrailStore,
  StoredGuardrail,
} from '../../shared/core/guardrail';
import type { Lane, WritePacer } from '../../shared/pacing/pacer';

// ---------------------------------------------------------------------------------------------
// Time and randomness

/** A clock the test controls. `now` is the function the deps take. */
export class TestClock {
  private ms: number;

  constructor(start: string | Date = '2026-11-30T09:00:00.000Z') {
    this.ms = new Date(start).getTime();
  }

  readonly now = (): Date => new Date(this.ms);

  advance(ms: number): void {
    this.ms += ms;
  }

  set(at: string | Date): void {
    this.ms = new Date(at).getTime();
  }

  /** An instant relative to now, as ISO text (leave dates, expectations). */
  iso(offsetMs = 0): string {
    return new Date(this.ms + offsetMs).toISOString();
  }
}

/** A deterministic `random` in [0, 1): a fixed value, or a seeded sequence (mulberry32). */
export function fixedRandom(value = 0.5): () => number {
  return () => value;
}

export function seededRandom(seed = 1): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Audit log (Table Storage)

/** What TableAuditLog throws when the store cannot be reached: retryable AuditUnavailable. */
export function auditUnavailable(what: 'read' | 'write' = 'write'): OffboardingError {
  return new OffboardingError(
    ErrorCodes.AuditUnavailable,
    `Could not ${what} the audit record (HTTP 503): injected outage.`,
    { retryable: true },
  );
}

type AuditOperation = 'read' | 'write' | 'query';

interface Outage {
  operation: AuditOperation;
  /** Calls of that operation to let through before failing. */
  skip: number;
  /** Calls to fail after that. */
  count: number;
}

/**
 * The audit table in memory. Records are keyed by (identityKey, contentDigest) as partition and
 * row key. As with Table Storage: `create` of an existing key fails (409, here undefined);
 * `replace` at a moved ETag or of a missing record fails (412/404, here undefined); every write
 * gets a new ETag; stored values go through JSON, so `undefined` fields vanish and reads are
 * copies; `objectId` is stored lower-cased (the adapter lower-cases it for lookups).
 */
export class MemoryAuditLog implements AuditLog {
  private readonly rows = new Map<string, StoredRecord>();
  private etagCounter = 0;
  private readonly outages: Outage[] = [];
  private readonly beforeWriteHooks: Array<{
    skip: number;
    run: (log: MemoryAuditLog, record: AuditRecord) => void;
  }> = [];
  /** Successful creates and replaces, in order (what was stored). */
  readonly writes: Array<{ kind: 'create' | 'replace'; record: AuditRecord }> = [];
  /** Writes refused because the condition failed (409/412/404). */
  conflicts = 0;

  async read(key: RecordKey): Promise<StoredRecord | undefined> {
    await this.gate('read');
    const row = this.rows.get(rowKey(key));
    return row === undefined ? undefined : copyStored(row);
  }

  async create(record: AuditRecord): Promise<StoredRecord | undefined> {
    await this.gate('write');
    this.runBeforeWrite(record);
    if (this.rows.has(rowKey(record))) {
      this.conflicts += 1;
      return undefined;
    }
    return this.store('create', record);
  }

  async replace(record: AuditRecord, etag: string): Promise<StoredRecord | undefined> {
    await this.gate('write');
    this.runBeforeWrite(record);
    const current = this.rows.get(rowKey(record));
    if (current === undefined || current.etag !== etag) {
      this.conflicts += 1;
      return undefined;
    }
    return this.store('replace', record);
  }

  async listIdentity(identityKey: string): Promise<AuditRecord[]> {
    await this.gate('query');
    return this.all().filter((r) => r.identityKey === identityKey);
  }

  async findByUser(userIdOrUpn: string): Promise<StoredRecord[]> {
    await this.gate('query');
    const key = userIdOrUpn.toLowerCase();
    return [...this.rows.values()]
      .filter(
        ({ record }) =>
          record.user?.toLowerCase() === key ||
          record.objectId?.toLowerCase() === key ||
          record.userPrincipalName?.toLowerCase() === key,
      )
      .map(copyStored)
      .sort((a, b) => a.record.lastAttemptAt.localeCompare(b.record.lastAttemptAt));
  }

  async findByEventId(eventId: string): Promise<AuditRecord[]> {
    await this.gate('query');
    return this.all().filter((r) => r.eventId === eventId);
  }

  async listSince(since: Date): Promise<AuditRecord[]> {
    await this.gate('query');
    return this.all().filter((r) => r.lastAttemptAt >= since.toISOString());
  }

  async listByOutcome(outcome: Outcome): Promise<StoredRecord[]> {
    await this.gate('query');
    return [...this.rows.values()]
      .filter(({ record }) => record.outcome === outcome)
      .map(copyStored)
      .sort((a, b) => a.record.firstAttemptAt.localeCompare(b.record.firstAttemptAt));
  }

  // -- Test controls (no outage applies to these) --

  /** Every stored record (copies), in the table's order: partition key, then row key. */
  all(): AuditRecord[] {
    return [...this.rows.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, row]) => copyStored(row).record);
  }

  /** The one record of an event id (fails the test if there is not exactly one). */
  only(eventId: string): AuditRecord {
    const found = this.all().filter((r) => r.eventId === eventId);
    if (found.length !== 1) {
      throw new Error(`Expected one audit record for ${eventId}, found ${found.length}.`);
    }
    return found[0] as AuditRecord;
  }

  /**
   * Fails `count` calls of `operation` with a retryable AuditUnavailable, after letting `skip`
   * calls through ('query' covers listIdentity, findByUser and findByEventId).
   */
  fail(operation: AuditOperation, count: number, skip = 0): void {
    this.outages.push({ operation, skip, count });
  }

  /**
   * Runs `writer` just before a write lands, after `skip` writes have gone through: another run
   * writing between this run's read and its conditional write (a lost race). The writer uses
   * `force` (an unconditional write, as another instance's successful one).
   */
  beforeWrite(writer: (log: MemoryAuditLog, record: AuditRecord) => void, skip = 0): void {
    this.beforeWriteHooks.push({ skip, run: writer });
  }

  /** Writes a record unconditionally (another instance's write, or a seeded one). */
  force(record: AuditRecord): void {
    this.store(this.rows.has(rowKey(record)) ? 'replace' : 'create', record);
  }

  private store(kind: 'create' | 'replace', record: AuditRecord): StoredRecord {
    const stored = normalise(record);
    this.etagCounter += 1;
    const row = { record: stored, etag: `W/"datetime'${this.etagCounter}'"` };
    this.rows.set(rowKey(stored), row);
    this.writes.push({ kind, record: normalise(stored) });
    return copyStored(row);
  }

  private runBeforeWrite(record: AuditRecord): void {
    const hook = this.beforeWriteHooks[0];
    if (hook === undefined) return;
    if (hook.skip > 0) {
      hook.skip -= 1;
      return;
    }
    this.beforeWriteHooks.shift();
    hook.run(this, normalise(record));
  }

  private gate(operation: AuditOperation): Promise<void> {
    const outage = this.outages.find((o) => o.operation === operation);
    if (outage === undefined) return Promise.resolve();
    if (outage.skip > 0) {
      outage.skip -= 1;
      return Promise.resolve();
    }
    outage.count -= 1;
    if (outage.count <= 0) this.outages.splice(this.outages.indexOf(outage), 1);
    return Promise.reject(auditUnavailable(operation === 'write' ? 'write' : 'read'));
  }
}

function rowKey(key: RecordKey): string {
  return JSON.stringify([key.identityKey, key.contentDigest]);
}

/** What a Table Storage round trip leaves of a record. */
function normalise(record: AuditRecord): AuditRecord {
  const copy = JSON.parse(JSON.stringify(record)) as AuditRecord;
  if (copy.objectId !== undefined) copy.objectId = copy.objectId.toLowerCase();
  copy.duplicates ??= 0;
  return copy;
}

function copyStored(row: StoredRecord): StoredRecord {
  return { record: normalise(row.record), etag: row.etag };
}

// ---------------------------------------------------------------------------------------------
// Directory (Microsoft Graph)

export type DirectoryOperation =
  'getUser' | 'revokeSignInSessions' | 'disableAccount' | 'enableAccount' | 'resetPassword';

export const WRITE_OPERATIONS: readonly DirectoryOperation[] = [
  'disableAccount',
  'enableAccount',
  'resetPassword',
  'revokeSignInSessions',
];

/** A user as the fake directory keeps it: what the port returns, plus state the tests inspect. */
export interface FakeUser extends DirectoryUser {
  accountEnabled: boolean;
  /** An Entra admin role the user holds: its sensitive attributes need a higher role than ours. */
  adminRole?: string;
}

export interface DirectoryCallRecord {
  operation: DirectoryOperation;
  /** The object id or UPN the call addressed. */
  target: string;
  /** 'ok' or the OffboardingError code it failed with. */
  result: 'ok' | ErrorCode;
  at: string;
}

/** Errors as GraphDirectory translates Graph's answers (codes, retryability, Retry-After). */
export const graphErrors = {
  throttled: (retryAfterSeconds: number, requestId = 'req-throttled'): OffboardingError =>
    new OffboardingError(
      ErrorCodes.Throttled,
      `Graph 429 TooManyRequests (Retry-After ${retryAfterSeconds} s)`,
      { retryable: true, retryAfterSeconds, requestId },
    ),
  unavailable: (requestId = 'req-unavailable'): OffboardingError =>
    new OffboardingError(ErrorCodes.GraphUnavailable, 'Graph 503 ServiceUnavailable', {
      retryable: true,
      requestId,
    }),
  authenticationFailed: (): OffboardingError =>
    new OffboardingError(
      ErrorCodes.AuthenticationFailed,
      'Could not get a Microsoft Graph token from the managed identity (CredentialUnavailableError).',
      { retryable: true },
    ),
  forbidden: (requestId = 'req-forbidden'): OffboardingError =>
    new OffboardingError(
      ErrorCodes.Forbidden,
      'Graph 403 Authorization_RequestDenied: Insufficient privileges to complete the operation.',
      { retryable: false, requestId },
    ),
  notFound: (requestId = 'req-notfound'): OffboardingError =>
    new OffboardingError(
      ErrorCodes.UserNotFound,
      'Graph 404 Request_ResourceNotFound. No such user in this tenant.',
      { retryable: false, requestId },
    ),
  onPremisesMastered: (requestId = 'req-onprem'): OffboardingError =>
    new OffboardingError(
      ErrorCodes.OnPremisesMastered,
      'Graph 400 Request_BadRequest: Unable to update the specified properties for on-premises mastered Directory Sync objects.',
      { retryable: false, requestId },
    ),
};

/** Graph keeps signInSessionsValidFromDateTime in whole seconds. */
export function graphDateTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The person timelines in memory, with the Table adapter's semantics: conditional create and
 * replace (each write a new ETag), values stored as JSON (reads are copies), ids lower-cased.
 */
export class MemoryTimelineStore implements TimelineStore {
  private readonly rows = new Map<string, StoredTimeline>();
  private etagCounter = 0;
  /** Calls still to fail (a store outage), counted down on each call. */
  failNext = 0;

  read(personId: string): Promise<StoredTimeline | undefined> {
    this.gate();
    const row = this.rows.get(personId.toLowerCase());
    return Promise.resolve(row === undefined ? undefined : structuredClone(row));
  }

  create(timeline: Timeline): Promise<StoredTimeline | undefined> {
    this.gate();
    if (this.rows.has(timeline.personId)) return Promise.resolve(undefined);
    return Promise.resolve(this.store(timeline));
  }

  replace(timeline: Timeline, etag: string): Promise<StoredTimeline | undefined> {
    this.gate();
    if (this.rows.get(timeline.personId)?.etag !== etag) return Promise.resolve(undefined);
    return Promise.resolve(this.store(timeline));
  }

  /** The stored timeline of a person (a copy), for assertions. */
  of(personId: string): Timeline | undefined {
    const row = this.rows.get(personId.toLowerCase());
    return row === undefined ? undefined : structuredClone(row.timeline);
  }

  private store(timeline: Timeline): StoredTimeline {
    this.etagCounter += 1;
    const stored = {
      timeline: JSON.parse(JSON.stringify(timeline)) as Timeline,
      etag: `W/"${this.etagCounter}"`,
    };
    this.rows.set(timeline.personId, stored);
    return structuredClone(stored);
  }

  private gate(): void {
    if (this.failNext <= 0) return;
    this.failNext -= 1;
    throw auditUnavailable();
  }
}

export const DEFAULT_SESSIONS_VALID_FROM = '2026-01-01T00:00:00Z';

interface ProgrammedFailure {
  operation: DirectoryOperation;
  /** Only calls addressing this object id or UPN (any when undefined). */
  user?: string;
  error: () => OffboardingError;
  /** Matching calls to let through first. */
  skip: number;
  remaining: number;
}

/**
 * The directory in memory. getUser finds a user by object id or UPN (case-insensitive), and an
 * unknown one is UserNotFound (404, permanent). A revocation moves signInSessionsValidFromDateTime
 * to the clock's whole second. Writes to a synced user's accountEnabled or password are refused
 * (400 OnPremisesMastered), as are writes to an admin's sensitive attributes unless the app holds
 * a role above it (403 Forbidden). Failures can be programmed per operation and user; every call
 * is recorded, never a password (which must arrive as a Secret).
 */
export class FakeDirectory implements Directory {
  private readonly users: FakeUser[] = [];
  private readonly failures: ProgrammedFailure[] = [];
  private readonly staleReads = new Map<string, { previous?: string | null; remaining: number }>();
  private requestCounter = 0;
  private userCounter = 0;
  readonly calls: DirectoryCallRecord[] = [];
  /** Milliseconds every call takes on the test clock (to reach a run's budget). */
  latencyMs = 0;
  /** Whether the app's Entra role may change admins' sensitive attributes. */
  mayManageAdmins = false;

  constructor(private readonly clock: TestClock) {}

  addUser(user: Partial<FakeUser> & { userPrincipalName: string }): FakeUser {
    this.userCounter += 1;
    const added: FakeUser = {
      id: user.id ?? `00000000-0000-4000-8000-${String(this.userCounter).padStart(12, '0')}`,
      accountEnabled: true,
      userType: 'Member',
      onPremisesSyncEnabled: null,
      signInSessionsValidFromDateTime: DEFAULT_SESSIONS_VALID_FROM,
      ...user,
    };
    this.users.push(added);
    return added;
  }

  removeUser(idOrUpn: string): void {
    const user = this.find(idOrUpn);
    if (user !== undefined) this.users.splice(this.users.indexOf(user), 1);
  }

  /** The live user (not a copy), for assertions and changes between attempts. */
  user(idOrUpn: string): FakeUser {
    const user = this.find(idOrUpn);
    if (user === undefined) throw new Error(`No fake user ${idOrUpn}`);
    return user;
  }

  /**
   * Fails `times` calls of `operation` (for `user` only, when given) with `error`, after letting
   * `skip` matching calls through.
   */
  failNext(
    operation: DirectoryOperation,
    error: () => OffboardingError,
    options: { user?: string; times?: number; skip?: number } = {},
  ): void {
    this.failures.push({
      operation,
      ...(options.user === undefined ? {} : { user: options.user.toLowerCase() }),
      error,
      skip: options.skip ?? 0,
      remaining: options.times ?? 1,
    });
  }

  /**
   * The next `reads` reads of this user after a revocation show the value from before it (Graph
   * is eventually consistent across replicas).
   */
  lagAfterRevoke(idOrUpn: string, reads: number): void {
    this.staleReads.set(this.user(idOrUpn).id, { remaining: reads });
  }

  writes(): DirectoryCallRecord[] {
    return this.calls.filter((c) => WRITE_OPERATIONS.includes(c.operation));
  }

  callsOf(operation: DirectoryOperation): DirectoryCallRecord[] {
    return this.calls.filter((c) => c.operation === operation);
  }

  getUser(ref: UserRef): Promise<DirectoryCall & { user: DirectoryUser }> {
    return this.call('getUser', ref.value, (user) => {
      const stale = this.staleReads.get(user.id);
      const seen = { ...user };
      if (stale?.previous !== undefined && stale.remaining > 0) {
        stale.remaining -= 1;
        seen.signInSessionsValidFromDateTime = stale.previous;
      }
      // Only what the adapter $selects.
      const selected: DirectoryUser = {
        id: seen.id,
        userPrincipalName: seen.userPrincipalName,
        userType: seen.userType,
        onPremisesSyncEnabled: seen.onPremisesSyncEnabled,
        signInSessionsValidFromDateTime: seen.signInSessionsValidFromDateTime,
        accountEnabled: seen.accountEnabled,
      };
      return { user: selected };
    });
  }

  /** Enabled accounts among the fake users (what Graph's /users/$count answers). */
  countEnabledUsers(): Promise<number> {
    return Promise.resolve(this.users.filter((u) => u.accountEnabled).length);
  }

  revokeSignInSessions(userId: string): Promise<DirectoryCall> {
    return this.call('revokeSignInSessions', userId, (user) => {
      const stale = this.staleReads.get(user.id);
      if (stale !== undefined) stale.previous = user.signInSessionsValidFromDateTime;
      // Guests too: Graph answers 200 and stamps the time, though the home tenant is not reached.
      user.signInSessionsValidFromDateTime = graphDateTime(this.clock.now());
      return {};
    });
  }

  disableAccount(userId: string): Promise<DirectoryCall> {
    return this.call('disableAccount', userId, (user) => {
      this.checkSensitiveWrite(user);
      user.accountEnabled = false;
      return {};
    });
  }

  enableAccount(userId: string): Promise<DirectoryCall> {
    return this.call('enableAccount', userId, (user) => {
      this.checkSensitiveWrite(user);
      user.accountEnabled = true;
      return {};
    });
  }

  resetPassword(userId: string, password: Secret): Promise<DirectoryCall> {
    if (!(password instanceof Secret)) {
      throw new Error('resetPassword must receive the password as a Secret.');
    }
    return this.call('resetPassword', userId, (user) => {
      this.checkSensitiveWrite(user);
      // The value is only checked, never kept.
      if (password.reveal().length < 8) {
        throw new OffboardingError(ErrorCodes.GraphBadRequest, 'Graph 400 password complexity', {
          retryable: false,
        });
      }
      return {};
    });
  }

  private checkSensitiveWrite(user: FakeUser): void {
    if (user.adminRole !== undefined && !this.mayManageAdmins) throw graphErrors.forbidden();
    if (user.onPremisesSyncEnabled === true) throw graphErrors.onPremisesMastered();
  }

  private find(idOrUpn: string): FakeUser | undefined {
    const key = idOrUpn.toLowerCase();
    return this.users.find(
      (u) => u.id.toLowerCase() === key || u.userPrincipalName.toLowerCase() === key,
    );
  }

  private async call<T extends object>(
    operation: DirectoryOperation,
    target: string,
    work: (user: FakeUser) => T,
  ): Promise<T & DirectoryCall> {
    await Promise.resolve();
    this.clock.advance(this.latencyMs);
    const at = this.clock.iso();
    const requestId = `req-${++this.requestCounter}`;
    try {
      const programmed = this.takeFailure(operation, target);
      if (programmed !== undefined) throw programmed;
      const user = this.find(target);
      if (user === undefined) throw graphErrors.notFound(requestId);
      const result = work(user);
      this.calls.push({ operation, target, result: 'ok', at });
      return { ...result, requestId };
    } catch (error) {
      const code = error instanceof OffboardingError ? error.code : ErrorCodes.Unexpected;
      this.calls.push({ operation, target, result: code, at });
      throw error;
    }
  }

  private takeFailure(operation: DirectoryOperation, target: string): OffboardingError | undefined {
    const user = this.find(target);
    const names = [
      target.toLowerCase(),
      user?.id.toLowerCase(),
      user?.userPrincipalName.toLowerCase(),
    ];
    const failure = this.failures.find(
      (f) =>
        f.operation === operation &&
        f.remaining > 0 &&
        (f.user === undefined || names.includes(f.user)),
    );
    if (failure === undefined) return undefined;
    if (failure.skip > 0) {
      failure.skip -= 1;
      return undefined;
    }
    failure.remaining -= 1;
    if (failure.remaining === 0) this.failures.splice(this.failures.indexOf(failure), 1);
    return failure.error();
  }
}

// ---------------------------------------------------------------------------------------------
// Scheduler (Service Bus scheduled messages)

export interface ScheduledEntry {
  queue: string;
  message: OutgoingMessage;
  at: Date;
  sequenceNumber: string;
  cancelled: boolean;
  /** Enqueued at its time and handed to a receiver (see `take`): it can no longer be cancelled. */
  delivered: boolean;
}

/**
 * Scheduled messages in memory. Sequence numbers are 64-bit integers as text, increasing.
 * `cancel` answers false for a message that is unknown or already cancelled.
 */
export class FakeScheduler implements Scheduler {
  readonly scheduled: ScheduledEntry[] = [];
  private sequence = 1000;
  private failuresLeft = 0;
  readonly cancels: Array<{ queue: string; sequenceNumber: string; result: boolean }> = [];

  schedule(queue: string, message: OutgoingMessage, at: Date): Promise<string> {
    if (this.failuresLeft > 0) {
      this.failuresLeft -= 1;
      return Promise.reject(
        new OffboardingError(
          ErrorCodes.MessagingUnavailable,
          'Could not schedule the message: injected outage.',
          { retryable: true },
        ),
      );
    }
    this.sequence += 1;
    const sequenceNumber = String(this.sequence);
    this.scheduled.push({
      queue,
      message: structuredClone(message),
      at: new Date(at),
      sequenceNumber,
      cancelled: false,
      delivered: false,
    });
    return Promise.resolve(sequenceNumber);
  }

  cancel(queue: string, sequenceNumber: string): Promise<boolean> {
    const entry = this.scheduled.find(
      (s) =>
        s.queue === queue && s.sequenceNumber === sequenceNumber && !s.cancelled && !s.delivered,
    );
    if (entry !== undefined) entry.cancelled = true;
    this.cancels.push({ queue, sequenceNumber, result: entry !== undefined });
    return Promise.resolve(entry !== undefined);
  }

  /** Fails the next `count` schedule calls with MessagingUnavailable. */
  failNext(count = 1): void {
    this.failuresLeft += count;
  }

  /** The messages still waiting (neither cancelled nor delivered). */
  pending(): ScheduledEntry[] {
    return this.scheduled.filter((s) => !s.cancelled && !s.delivered);
  }

  /**
   * Hands a scheduled message to a receiver as the trigger would (body, MessageId, properties);
   * from then on it cannot be cancelled. A cancelled message is never delivered.
   */
  take(entry: ScheduledEntry): {
    body: unknown;
    messageId: string;
    properties: Record<string, unknown>;
  } {
    if (entry.cancelled)
      throw new Error(`Scheduled message ${entry.message.messageId} was cancelled.`);
    entry.delivered = true;
    return {
      body: structuredClone(entry.message.body),
      messageId: entry.message.messageId,
      properties: { ...entry.message.applicationProperties },
    };
  }

  /** The last scheduled message (fails the test if there is none). */
  last(): ScheduledEntry {
    const entry = this.scheduled[this.scheduled.length - 1];
    if (entry === undefined) throw new Error('Nothing was scheduled.');
    return entry;
  }
}

// ---------------------------------------------------------------------------------------------
// Write pacer

/**
 * A pacer that grants every reservation, except the next ones it is told to defer (throwing the
 * retryable Deferred the real pacer throws). Records every reservation.
 */
export class FakePacer implements WritePacer {
  readonly reservations: Array<{ lane: Lane; writes: number; granted: boolean }> = [];
  private readonly deferrals: number[] = [];

  /** Defers the next reservation, asking to come back after `retryAfterSeconds`. */
  deferNext(retryAfterSeconds: number): void {
    this.deferrals.push(retryAfterSeconds);
  }

  reserve(lane: Lane, writes: number): Promise<void> {
    const retryAfterSeconds = this.deferrals.shift();
    this.reservations.push({ lane, writes, granted: retryAfterSeconds === undefined });
    if (retryAfterSeconds === undefined) return Promise.resolve();
    return Promise.reject(
      new OffboardingError(
        ErrorCodes.Deferred,
        `The Graph write budget has no room for ${writes} write(s) in lane ${lane} now.`,
        { retryable: true, retryAfterSeconds },
      ),
    );
  }
}

/** The guardrail's record in memory, with the same conditional-write contract as the table. */
export class MemoryGuardrailStore implements GuardrailStore {
  private readonly rows = new Map<GuardrailName, StoredGuardrail>();
  private version = 0;

  read(route: GuardrailName): Promise<StoredGuardrail | undefined> {
    const row = this.rows.get(route);
    return Promise.resolve(row && { state: structuredClone(row.state), etag: row.etag });
  }

  private readonly decisions = new Map<string, EventDecision>();

  decisionFor(route: GuardrailName, key: RecordKey): Promise<EventDecision | undefined> {
    const found = this.decisions.get(`${route}/${key.identityKey}.${key.contentDigest}`);
    return Promise.resolve(found && { ...found });
  }

  /** The first decision about an event stands (as the table's insert-if-absent). */
  decide(route: GuardrailName, key: RecordKey, decision: EventDecision): Promise<EventDecision> {
    const id = `${route}/${key.identityKey}.${key.contentDigest}`;
    const standing = this.decisions.get(id) ?? decision;
    this.decisions.set(id, standing);
    return Promise.resolve({ ...standing });
  }

  decidedInTrip(route: GuardrailName, trip: number): Promise<number> {
    return Promise.resolve(
      [...this.decisions].filter(([id, d]) => id.startsWith(`${route}/`) && d.trip === trip).length,
    );
  }

  write(
    route: GuardrailName,
    state: GuardrailState,
    etag: string | undefined,
  ): Promise<string | undefined> {
    if (this.rows.get(route)?.etag !== etag) return Promise.resolve(undefined);
    this.version += 1;
    const next = `g${this.version}`;
    this.rows.set(route, { state: structuredClone(state), etag: next });
    return Promise.resolve(next);
  }
}
