import { CAE_CUTOFF_MS } from './accessCutoff';
import { updateRecord } from './auditRecords';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { kindOfType } from './events';
import type { Scheduler } from './messaging';
import type { OutcomeEvent } from './outcomeEvent';
import { toWatchEvent } from './outcomeEvent';
import type { AuditLog, AuditRecord, SignInLog, TimelineStore } from './ports';
import {
  EARLY_TOLERANCE_MS,
  MAX_CHECK_ATTEMPTS,
  judgeSignIns,
  planWatch,
  unavailable,
  watchCutoff,
  watchMessage,
  windowEnd,
  type SignInEntry,
  type SignInWatchSettings,
  type SignInWatch,
  type WatchFinding,
  type WatchMessage,
} from './signInWatch';

/*
 * The sign-in watch's shell: plans the checks when a departure succeeds, and runs one check when
 * its message arrives. The rule is in signInWatch.ts; the record of the departure is the one place
 * the watch is written (conditionally, like every record), so a check is recorded once whatever
 * brings its message back (a redelivery, a duplicate, `offboard dlq replay`).
 */

export type { SignInWatchSettings } from './signInWatch';

/** A sign-in log walk stops after this many pages (1,000 entries each): every read has a bound. */
export const MAX_SIGN_IN_PAGES = 20;

/**
 * Plans the watch of a departure about to be recorded `succeeded` (mutates the record): schedules
 * one check per delay on the departures queue and notes them, or notes why none was scheduled. A
 * record that has a watch already keeps it (a retry of the final write schedules nothing twice;
 * the messages' ids are deterministic besides).
 */
export async function planSignInWatch(
  deps: { scheduler: Scheduler; queue: string; settings?: SignInWatchSettings },
  record: AuditRecord,
): Promise<void> {
  const { settings } = deps;
  if (settings?.enabled !== true || record.signInWatch !== undefined || record.dryRun) return;
  if (kindOfType(record.eventType ?? '') !== 'employee.leaving') return;
  // A departure that succeeded, or one that failed for good after its revocation went through (a
  // synced account whose disable is owned on-premises): exactly where someone may still get in.
  const final =
    record.outcome === 'succeeded' || (record.outcome === 'failed' && record.retryable === false);
  const revoked = record.actions.some(
    (a) => a.action === 'revokeSignInSessions' && a.status === 'succeeded',
  );
  const revokedAt = record.verification?.signInSessionsValidFrom;
  if (!final || !revoked || record.verification?.verified !== true || revokedAt === undefined)
    return;
  const cutoffAt =
    record.outcome === 'succeeded'
      ? watchCutoff(record.accessCutoff)
      : // No promise on a failed record: the revocation's own (CAE) window.
        new Date(Date.parse(revokedAt) + CAE_CUTOFF_MS).toISOString();
  if (cutoffAt === undefined) {
    record.notes.push(
      'Sign-in watch: not scheduled, access does not end for this account (see accessCutoff).',
    );
    return;
  }
  const watch = planWatch(revokedAt, cutoffAt, settings.afterMinutes);
  try {
    for (const [index, check] of watch.checks.entries()) {
      check.sequenceNumber = await deps.scheduler.schedule(
        deps.queue,
        watchMessage(record, index, watch.from),
        new Date(check.dueAt),
      );
    }
  } catch (error) {
    // The departure stands; the audit says the watch did not happen (never a silent gap).
    watch.notScheduled = toOffboardingError(error).message;
  }
  record.signInWatch = watch;
}

export interface WatchDeps {
  audit: AuditLog;
  timelines: TimelineStore;
  signIns: SignInLog;
  scheduler: Scheduler;
  /** The departures queue (checks and their retries travel on it). */
  queue: string;
  settings: SignInWatchSettings;
  /** Publishes the incident on the outcome topic (after the record says so). */
  announce?: (event: OutcomeEvent) => Promise<void>;
  now?: () => Date;
}

export type WatchResult =
  | { kind: 'ignored'; reason: string }
  | { kind: 'retry'; at: string; error: OffboardingError }
  | {
      kind: 'recorded' | 'duplicate';
      record: AuditRecord;
      check: number;
      finding: WatchFinding;
      /** This run recorded the incident first: the alert's log line is written now, once. */
      incidentNow: boolean;
    };

/** Runs one check of a departure's watch. Throws only when the audit or Service Bus fails. */
export async function runWatchCheck(deps: WatchDeps, message: WatchMessage): Promise<WatchResult> {
  const now = (deps.now ?? (() => new Date()))();
  const stored = await deps.audit.read(message.key);
  const record = stored?.record;
  const watch = record?.signInWatch;
  const check = watch?.checks[message.check];
  // Only a check this app planned counts: a forged message names no watch, or one already done.
  if (record === undefined || watch === undefined || check === undefined)
    return { kind: 'ignored', reason: 'no sign-in watch is planned for this record and check' };
  if (check.result !== undefined) return settled(deps, record, message.check, false, true);
  if (!deps.settings.enabled)
    return { kind: 'ignored', reason: 'SIGNIN_WATCH_ENABLED is off: the check is not run' };
  if (now.getTime() < Date.parse(check.dueAt) - EARLY_TOLERANCE_MS)
    return { kind: 'ignored', reason: `the check is due at ${check.dueAt}, not now` };
  // The record counts the check's attempts (a message property could be forged).
  const attempt = (check.retries ?? 0) + 1;

  let finding: WatchFinding;
  try {
    finding = await read(deps, record, watch, now);
  } catch (thrown) {
    const error = toOffboardingError(thrown);
    if (!error.retryable) finding = unavailable(now, error.code, error.message);
    else if (attempt >= MAX_CHECK_ATTEMPTS)
      finding = unavailable(
        now,
        ErrorCodes.RetriesExhausted,
        `The sign-in log kept failing (${attempt} attempts; last error ${error.code}: ${error.message}).`,
      );
    else {
      // Graph asked for a wait (429) or failed: the check comes back later, a bounded number of times.
      const waitMs = Math.max((error.retryAfterSeconds ?? 0) * 1000, 60_000 * 2 ** (attempt - 1));
      const at = new Date(now.getTime() + Math.min(waitMs, 3_600_000));
      await deps.scheduler.schedule(
        deps.queue,
        watchMessage(record, message.check, watch.from, attempt),
        at,
      );
      await updateRecord(deps.audit, message.key, (current) => {
        const c = current?.signInWatch?.checks[message.check];
        if (current === undefined || c === undefined || c.result !== undefined)
          return { verdict: undefined };
        const next = structuredClone(current);
        const nextCheck = next.signInWatch?.checks[message.check];
        if (nextCheck !== undefined) nextCheck.retries = attempt;
        return { next, verdict: undefined };
      });
      return { kind: 'retry', at: at.toISOString(), error };
    }
  }

  const written = await updateRecord(deps.audit, message.key, (current) => {
    const currentCheck = current?.signInWatch?.checks[message.check];
    if (current === undefined || currentCheck === undefined)
      return { verdict: { duplicate: true, incidentNow: false } };
    // Another delivery of this check recorded it first: its finding stands.
    if (currentCheck.result !== undefined)
      return { verdict: { duplicate: true, incidentNow: false } };
    const next = structuredClone(current);
    const nextWatch = next.signInWatch as SignInWatch;
    (nextWatch.checks[message.check] as { result?: WatchFinding }).result = finding;
    const incidentNow =
      finding.verdict === 'signin-after-cutoff' && nextWatch.announcedAt === undefined;
    if (incidentNow) {
      nextWatch.announcedAt = now.toISOString();
      nextWatch.announcedBy = message.check;
    }
    return { next, verdict: { duplicate: false, incidentNow } };
  });
  if (written.record === undefined)
    return { kind: 'ignored', reason: 'the record disappeared while the check ran' };
  return settled(
    deps,
    written.record,
    message.check,
    written.verdict.incidentNow,
    written.verdict.duplicate,
  );
}

/**
 * The incident's announcement, at least once: the check that recorded it publishes it, and every
 * later delivery of that check publishes it again with the same id (the first may have failed).
 */
async function settled(
  deps: WatchDeps,
  record: AuditRecord,
  check: number,
  incidentNow: boolean,
  duplicate: boolean,
): Promise<WatchResult> {
  const finding = record.signInWatch?.checks[check]?.result as WatchFinding;
  if (record.signInWatch?.announcedBy === check && deps.announce !== undefined) {
    const event = toWatchEvent(record);
    if (event !== undefined) await deps.announce(event);
  }
  return { kind: duplicate ? 'duplicate' : 'recorded', record, check, finding, incidentNow };
}

/** A person's sign-ins in a window, as far as they were read. */
export interface SignInWindow {
  entries: SignInEntry[];
  /** More pages than MAX_SIGN_IN_PAGES: the oldest entries were not read. */
  truncated: boolean;
  /** Entries Graph listed that could not be read (no id, time or status). */
  unreadable: number;
  /** The window starts before the log's retention: its oldest entries are gone. */
  beyondRetention: boolean;
}

/**
 * Entra keeps sign-ins 30 days with P1 or P2 (learn.microsoft.com/entra/identity/monitoring-health/
 * reference-reports-data-retention): a window that starts earlier cannot be read whole.
 */
export const SIGN_IN_LOG_RETENTION_MS = 30 * 24 * 3_600_000;

/** Reads a person's sign-ins created in [from, to], newest first, page after page (bounded). */
export async function readSignInWindow(
  log: SignInLog,
  userId: string,
  from: string,
  to: string,
  now: Date,
): Promise<SignInWindow> {
  let page = await log.listSignIns(userId, from, to);
  const entries = [...page.signIns];
  let unreadable = page.unreadable ?? 0;
  for (let pages = 1; page.nextLink !== undefined && pages < MAX_SIGN_IN_PAGES; pages++) {
    page = await log.nextSignIns(page.nextLink);
    entries.push(...page.signIns);
    unreadable += page.unreadable ?? 0;
  }
  const beyondRetention = Date.parse(from) < now.getTime() - SIGN_IN_LOG_RETENTION_MS;
  return { entries, truncated: page.nextLink !== undefined, unreadable, beyondRetention };
}

/** Why a read does not cover its whole window (the first reason), or undefined when it does. */
export function partialReadCode(read: SignInWindow): string | undefined {
  if (read.beyondRetention) return 'BeyondRetention';
  if (read.truncated) return 'Truncated';
  if (read.unreadable > 0) return 'UnreadableSignIns';
  return undefined;
}

/** Reads the person's sign-ins in the window and judges them. */
async function read(
  deps: WatchDeps,
  record: AuditRecord,
  watch: SignInWatch,
  now: Date,
): Promise<WatchFinding> {
  const userId = record.objectId;
  if (userId === undefined)
    throw new OffboardingError(ErrorCodes.UserNotFound, 'The record names no object id.', {
      retryable: false,
    });
  const timeline = (await deps.timelines.read(userId.toLowerCase()))?.timeline;
  const end = windowEnd(timeline, `${record.identityKey}/${record.contentDigest}`, now);
  const read = await readSignInWindow(deps.signIns, userId, watch.from, end.to, now);
  const finding = judgeSignIns(
    read.entries,
    { from: watch.from, to: end.to, cutoffAt: watch.cutoffAt },
    now,
  );
  const notes = [
    end.note,
    read.truncated
      ? `Only the first ${MAX_SIGN_IN_PAGES} pages of the sign-in log were read (newest first): older entries were not judged.`
      : undefined,
    read.unreadable > 0
      ? `${read.unreadable} sign-in log entr${read.unreadable === 1 ? 'y' : 'ies'} could not be read (no id, time or status): not judged.`
      : undefined,
    read.beyondRetention
      ? `The window starts more than ${SIGN_IN_LOG_RETENTION_MS / 86_400_000} days ago: Entra no longer keeps its oldest sign-ins.`
      : undefined,
  ].filter((n): n is string => n !== undefined);
  // Unread pages, entries or days could hold a sign-in after the cut-off: without an incident,
  // nothing is claimed.
  const partial = partialReadCode(read);
  if (finding.verdict !== 'signin-after-cutoff' && partial !== undefined)
    return { ...finding, verdict: 'unavailable', errorCode: partial, note: notes.join(' ') };
  return notes.length === 0 ? finding : { ...finding, note: notes.join(' ') };
}
