/**
 * When access really ends after a verified revocation: the one place for the figures and the
 * wording (the audit record, `offboard report` and the docs take them from here).
 *
 * Continuous Access Evaluation (learn.microsoft.com/entra, CAE) makes a revocation, a disabled
 * account and a password reset critical events: Exchange Online, SharePoint Online, Teams and
 * Microsoft Graph reject the user's tokens in near real time, up to 15 minutes. Other apps keep
 * a valid access token until it expires: an hour by default. CAE does not cover guests, and a
 * revocation never reaches the home tenant where a guest signs in.
 */

/** CAE propagation: "near real time, up to 15 minutes". */
export const CAE_CUTOFF_MS = 15 * 60_000;
/** Default access token lifetime for apps that do not honour CAE. */
export const ACCESS_TOKEN_LIFETIME_MS = 60 * 60_000;

export const CAE_APPS = 'Exchange Online, SharePoint Online, Teams, Microsoft Graph';

/**
 * Expected cut-off, from the verified revocation time. A time that is absent has no bound: the
 * note says why (a guest's home tenant, an account that stays enabled).
 */
export interface AccessCutoff {
  /** Apps that honour CAE reject the sessions by then (absent: CAE does not apply). */
  caeAppsBy?: string;
  /** Other apps, once their access tokens have expired (absent: access does not end). */
  otherAppsBy?: string;
  note: string;
}

export interface CutoffInput {
  /** signInSessionsValidFromDateTime read back after the revocation (the verified time). */
  revokedAt: string;
  guest: boolean;
  /** The account was disabled by this event (or already by an earlier attempt of it). */
  disabled: boolean;
}

/** undefined when revokedAt is not a time (no verified revocation, no promise). */
export function accessCutoff({
  revokedAt,
  guest,
  disabled,
}: CutoffInput): AccessCutoff | undefined {
  const revoked = Date.parse(revokedAt);
  if (Number.isNaN(revoked)) return undefined;
  const at = (ms: number) => new Date(revoked + ms).toISOString();
  const otherApps = `other apps keep a valid access token until it expires (up to an hour by default)`;
  if (guest) {
    if (!disabled)
      return {
        note: `Guest user not disabled: revocation does not reach the home tenant where the guest signs in and CAE does not cover guests, so access does not end; the guest can sign in again. Disable the account to cut access off.`,
      };
    return {
      otherAppsBy: at(ACCESS_TOKEN_LIFETIME_MS),
      note: `Guest user: not cut off in the home tenant, and CAE does not cover guests. The account is disabled here, so no new token is issued for this tenant; ${otherApps}, by otherAppsBy.`,
    };
  }
  const reSignIn = disabled
    ? ''
    : ' The account stays enabled: the user can sign in again; this is when the earlier sessions end.';
  return {
    caeAppsBy: at(CAE_CUTOFF_MS),
    otherAppsBy: at(ACCESS_TOKEN_LIFETIME_MS),
    note: `Apps that honour Continuous Access Evaluation (${CAE_APPS}) reject the sessions within minutes (near real time, up to 15 min, by caeAppsBy); ${otherApps}, by otherAppsBy.${reSignIn}`,
  };
}

/**
 * From when the revocation was due to the verified revocation, in ms: due is the later of when
 * this app first took the event (`firstAttemptAt`, its own clock) and the leave date. Not from the
 * event's `time`: that is the producer's word, and a backfilled, replayed, sample or forged event
 * carries any time it likes (one sample's fixed date made a p95 of eight days). undefined without
 * a verified revocation.
 */
export function revocationLatencyMs(record: {
  firstAttemptAt?: string;
  effectiveAt?: string;
  verification?: { verified: boolean; signInSessionsValidFrom?: string };
}): number | undefined {
  const due = revocationDueAt(record);
  const { verification } = record;
  if (due === undefined || verification?.verified !== true) return undefined;
  const revoked = Date.parse(verification.signInSessionsValidFrom ?? '');
  if (Number.isNaN(revoked)) return undefined;
  // Graph keeps whole seconds: a revocation in the first second may read as slightly earlier.
  return Math.max(0, revoked - due);
}

/** When the revocation was due (ms since the epoch): see revocationLatencyMs. */
export function revocationDueAt(record: {
  firstAttemptAt?: string;
  effectiveAt?: string;
}): number | undefined {
  const taken = Date.parse(record.firstAttemptAt ?? '');
  if (Number.isNaN(taken)) return undefined;
  const leaveDate = Date.parse(record.effectiveAt ?? '');
  return Number.isNaN(leaveDate) ? taken : Math.max(taken, leaveDate);
}
