import type { AccessCutoff } from './accessCutoff';
import { stableId } from './eventIdentity';
import { AppMessageIdPrefixes, MessageProperties, type OutgoingMessage } from './messaging';
import type { RecordKey } from './ports';
import type { Timeline } from './timeline';

/*
 * The sign-in watch (optional, SIGNIN_WATCH_ENABLED): after a departure succeeded, did the person
 * get back in? Checks scheduled after the access cut-off read the person's sign-ins since the
 * revocation from the Entra sign-in log and judge them here. Pure: the shell is signInWatchRun.ts.
 *
 * A sign-in log entry is Entra issuing a token. After a revocation (and a disable) Entra should
 * issue none to the person: a successful sign-in after the cut-off means the person got back in
 * (a disable that failed on a synced account, an account re-enabled by someone else, a session
 * the revocation did not reach). Failed attempts are counted, never alarmed.
 */

export interface SignInWatchSettings {
  enabled: boolean;
  /** Minutes after the cut-off at which a check runs (SIGNIN_WATCH_AFTER_MINUTES). */
  afterMinutes: readonly number[];
}

/** One entry of GET /auditLogs/signIns, the fields the watch reads (Graph's `signIn`). */
export interface SignInEntry {
  id: string;
  /** When the sign-in started (UTC, ISO 8601). */
  createdDateTime: string;
  appDisplayName?: string;
  ipAddress?: string;
  /** `Browser`, `Mobile Apps and Desktop clients`, `Exchange ActiveSync`, ... */
  clientAppUsed?: string;
  isInteractive?: boolean;
  /** `status.errorCode`: 0 is a successful sign-in, anything else failed. */
  errorCode: number;
  /** `conditionalAccessStatus`: success, failure, notApplied, unknownFutureValue. */
  conditionalAccessStatus?: string;
  /** `authenticationRequirement` (beta only): the strongest authentication the sign-in needed. */
  authenticationRequirement?: 'multiFactorAuthentication' | 'singleFactorAuthentication';
  /**
   * Whether the token issued was a Continuous Access Evaluation token (the "Is CAE Token" entry of
   * `authenticationProcessingDetails`, when Graph returns it); undefined when the log does not say.
   */
  caeToken?: boolean;
}

/** What a check concluded. */
export const WatchVerdicts = [
  /** A successful sign-in after the cut-off: an incident (audited, published, alerted once). */
  'signin-after-cutoff',
  /** No successful sign-in after the cut-off and no failed attempt since the revocation. */
  'no-sign-in',
  /** Only failed attempts since the revocation (counted, not alarmed). */
  'failed-attempts-only',
  /** The sign-in log could not be read: no licence, no permission, Graph kept failing. */
  'unavailable',
] as const;
export type WatchVerdict = (typeof WatchVerdicts)[number];

/** A successful sign-in after the cut-off, as the audit and the outcome event name it. */
export interface SignInSummary {
  at: string;
  app?: string;
  ipAddress?: string;
  clientAppUsed?: string;
  interactive?: boolean;
  /** true/false when the log says whether a CAE token was issued; absent when it does not. */
  caeToken?: boolean;
  conditionalAccessStatus?: string;
}

/** At most this many incident sign-ins are kept on the record and in the event (all are counted). */
export const MAX_LISTED_SIGN_INS = 10;

export interface WatchFinding {
  verdict: WatchVerdict;
  checkedAt: string;
  /** The span of the sign-in log read: from the revocation to the check (or a reinstatement). */
  window?: { from: string; to: string };
  /** Successful sign-ins after the cut-off (all counted; the first MAX_LISTED_SIGN_INS listed). */
  successesAfterCutoff?: number;
  signIns?: SignInSummary[];
  /** Successful sign-ins between the revocation and the cut-off (propagation: not an incident). */
  successesBeforeCutoff?: number;
  /** Failed sign-in attempts since the revocation. */
  failedAttempts?: number;
  /** Why the window ended early (a reinstatement), why the log was unavailable, or a truncation. */
  note?: string;
  /** For `unavailable`: the error code (Forbidden, NoPremiumLicence, RetriesExhausted, ...). */
  errorCode?: string;
}

/** One scheduled check on the departure's record. */
export interface WatchCheck {
  dueAt: string;
  /** Service Bus sequence number of the scheduled message. */
  sequenceNumber?: string;
  /** Retries of this check after Graph throttled or failed (bounded, see MAX_CHECK_ATTEMPTS). */
  retries?: number;
  result?: WatchFinding;
}

/** The watch as the departure's audit record keeps it (`signInWatch`). */
export interface SignInWatch {
  /** The verified revocation: sign-ins are read from here. */
  from: string;
  /** A successful sign-in strictly after this is an incident. */
  cutoffAt: string;
  checks: WatchCheck[];
  /** When the incident was announced (outcome event, alert line), and by which check: once. */
  announcedAt?: string;
  announcedBy?: number;
  /** The checks could not be scheduled (Service Bus refused): the watch did not happen. */
  notScheduled?: string;
}

/** Service Bus application property marking a watch message (informational: the body decides). */
export const WATCH_MESSAGE_PROPERTY = 'offboardingSignInWatch';
/** Body marker: a CloudEvent never has it, so a watch message is never read as an HR event. */
const WATCH_BODY_KIND = 'offboarding.signin-watch';

/** A check comes back after Graph throttled or failed at most this many times, then `unavailable`. */
export const MAX_CHECK_ATTEMPTS = 8;
/** A check delivered earlier than its due time by more than this is ignored (forged, or early). */
export const EARLY_TOLERANCE_MS = 60_000;

/** The message a check travels in: it names the record and the check, nothing else to trust. */
export interface WatchMessage {
  key: RecordKey;
  check: number;
}

/**
 * The cut-off the watch judges against: the earliest time the record promises access ends
 * (caeAppsBy, else otherAppsBy). Entra checks the revocation when it issues a token, so a token
 * issued after CAE's propagation window is a real re-entry. undefined when access does not end (a
 * guest left enabled): there is nothing to watch.
 */
export function watchCutoff(cutoff: AccessCutoff | undefined): string | undefined {
  return cutoff?.caeAppsBy ?? cutoff?.otherAppsBy;
}

/** The watch to put on a succeeded departure: one check per delay after the cut-off. */
export function planWatch(
  revokedAt: string,
  cutoffAt: string,
  afterMinutes: readonly number[],
): SignInWatch {
  const cutoff = Date.parse(cutoffAt);
  return {
    from: revokedAt,
    cutoffAt,
    checks: afterMinutes.map((m) => ({ dueAt: new Date(cutoff + m * 60_000).toISOString() })),
  };
}

/**
 * The scheduled message of a check; its id is the same every time for the same watch (duplicate
 * detection), and new for a new watch of the same record (a failed departure replayed and
 * revoked again: `from` moved), so the new checks are never dropped as repeats of the old ones.
 */
export function watchMessage(
  key: RecordKey,
  check: number,
  from: string,
  retry = 0,
): OutgoingMessage {
  return {
    body: {
      kind: WATCH_BODY_KIND,
      identityKey: key.identityKey,
      contentDigest: key.contentDigest,
      check,
    },
    messageId: `${AppMessageIdPrefixes.signInWatch}${stableId('signin-watch', key.identityKey, key.contentDigest, from, String(check), String(retry))}`,
    contentType: 'application/json',
    applicationProperties: {
      [WATCH_MESSAGE_PROPERTY]: check,
      [MessageProperties.attempt]: retry + 1,
    },
  };
}

/** A received body as a watch message; undefined for anything else (an HR event, junk). */
export function parseWatchMessage(body: unknown): WatchMessage | undefined {
  let value = body;
  if (value instanceof Uint8Array || typeof value === 'string') {
    const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
    if (!text.includes(WATCH_BODY_KIND) || text.length > 1024) return undefined;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const fields = value as Record<string, unknown>;
  if (fields.kind !== WATCH_BODY_KIND) return undefined;
  const { identityKey, contentDigest, check } = fields;
  // Record keys are stableIds (40 hex characters): anything else names no departure.
  if (typeof identityKey !== 'string' || !/^[0-9a-f]{40}$/.test(identityKey)) return undefined;
  if (typeof contentDigest !== 'string' || !/^[0-9a-f]{40}$/.test(contentDigest)) return undefined;
  if (typeof check !== 'number' || !Number.isInteger(check) || check < 0 || check > 9)
    return undefined;
  return { key: { identityKey, contentDigest }, check };
}

/**
 * The end of the window a check reads: now, or the person's reinstatement if one came after this
 * departure: from then on the person may sign in again legitimately. A newer departure does not end
 * it: the person stays gone in between, and the newer one's watch starts only at its own revocation
 * (a leave date may put that weeks later), so ending here would leave sign-ins nobody judges.
 */
export function windowEnd(
  timeline: Timeline | undefined,
  departureRef: string,
  now: Date,
): { to: string; note?: string } {
  const to = now.toISOString();
  const intents = timeline?.intents ?? [];
  const own = intents.find((i) => i.ref === departureRef);
  if (own === undefined) return { to };
  const reinstated = intents
    .filter((i) => i.kind === 'reinstate' && i.at > own.at)
    .sort((a, b) => a.at.localeCompare(b.at))[0];
  if (reinstated === undefined || reinstated.at >= to) return { to };
  return {
    to: reinstated.at,
    note: `The person was reinstated at ${reinstated.at} (event ${reinstated.eventId}): sign-ins after that are not judged.`,
  };
}

/**
 * The rule. Sign-ins are judged by `createdDateTime`: a successful one (status.errorCode 0) strictly
 * after the cut-off is an incident; one at or before it is the revocation still propagating (the
 * record promised access ends *by* the cut-off). Failed attempts are counted wherever they fall.
 * Entries outside [from, to] (a log that ignored the filter) are not judged.
 */
export function judgeSignIns(
  signIns: readonly SignInEntry[],
  window: { from: string; to: string; cutoffAt: string },
  checkedAt: Date,
): WatchFinding {
  const from = Date.parse(window.from);
  const to = Date.parse(window.to);
  const cutoff = Date.parse(window.cutoffAt);
  const seen = new Set<string>();
  const after: SignInEntry[] = [];
  let before = 0;
  let failed = 0;
  for (const entry of signIns) {
    const at = Date.parse(entry.createdDateTime);
    if (Number.isNaN(at) || at < from || at > to) continue;
    // Pages can overlap when new entries arrive while paging: one entry counts once.
    if (seen.has(entry.id)) continue;
    seen.add(entry.id);
    if (entry.errorCode !== 0) failed += 1;
    else if (at > cutoff) after.push(entry);
    else before += 1;
  }
  after.sort((a, b) => a.createdDateTime.localeCompare(b.createdDateTime));
  const verdict: WatchVerdict =
    after.length > 0 ? 'signin-after-cutoff' : failed > 0 ? 'failed-attempts-only' : 'no-sign-in';
  return {
    verdict,
    checkedAt: checkedAt.toISOString(),
    window: { from: window.from, to: window.to },
    successesAfterCutoff: after.length,
    ...(after.length > 0 ? { signIns: after.slice(0, MAX_LISTED_SIGN_INS).map(summaryOf) } : {}),
    successesBeforeCutoff: before,
    failedAttempts: failed,
  };
}

function summaryOf(entry: SignInEntry): SignInSummary {
  return {
    at: entry.createdDateTime,
    ...(entry.appDisplayName === undefined ? {} : { app: entry.appDisplayName }),
    ...(entry.ipAddress === undefined ? {} : { ipAddress: entry.ipAddress }),
    ...(entry.clientAppUsed === undefined ? {} : { clientAppUsed: entry.clientAppUsed }),
    ...(entry.isInteractive === undefined ? {} : { interactive: entry.isInteractive }),
    ...(entry.caeToken === undefined ? {} : { caeToken: entry.caeToken }),
    ...(entry.conditionalAccessStatus === undefined
      ? {}
      : { conditionalAccessStatus: entry.conditionalAccessStatus }),
  };
}

/** A check that could not read the log. */
export function unavailable(checkedAt: Date, errorCode: string, note: string): WatchFinding {
  return { verdict: 'unavailable', checkedAt: checkedAt.toISOString(), errorCode, note };
}

/** How a check's result reads in a report or a log line. */
export function describeFinding(finding: WatchFinding | undefined): string {
  if (finding === undefined) return 'pending';
  switch (finding.verdict) {
    case 'signin-after-cutoff':
      return `signed in after the cut-off (${finding.successesAfterCutoff ?? 0})`;
    case 'no-sign-in':
      return 'watched: no sign-in';
    case 'failed-attempts-only':
      return `watched: failed attempts only (${finding.failedAttempts ?? 0})`;
    case 'unavailable':
      return `watch unavailable (${finding.errorCode ?? 'unknown'})`;
  }
}

/** What an MFA wave did for one person, from their sign-ins since the revocation. */
export type MfaEffect = 'with-mfa' | 'without-mfa' | 'mfa-not-stated' | 'not-signed-in';

/**
 * `offboard report --wave`: has the person signed in again since the revocation, and with MFA?
 * With MFA once is enough (`authenticationRequirement` multiFactorAuthentication on a successful
 * sign-in); otherwise a successful sign-in that says singleFactorAuthentication is "without MFA";
 * successful sign-ins that do not say are "MFA not stated" (never counted as either).
 */
export function mfaEffect(signIns: readonly SignInEntry[], since: string): MfaEffect {
  const from = Date.parse(since);
  const successes = signIns.filter(
    (s) => s.errorCode === 0 && Date.parse(s.createdDateTime) >= from,
  );
  if (successes.length === 0) return 'not-signed-in';
  if (successes.some((s) => s.authenticationRequirement === 'multiFactorAuthentication'))
    return 'with-mfa';
  if (successes.some((s) => s.authenticationRequirement === 'singleFactorAuthentication'))
    return 'without-mfa';
  return 'mfa-not-stated';
}
