import type { SignInLogVersion } from '../shared/app/config';
import { kindOfType } from '../shared/core/events';
import { toOffboardingError } from '../shared/core/errors';
import type { AuditRecord, SignInLog } from '../shared/core/ports';
import { mfaEffect, type MfaEffect } from '../shared/core/signInWatch';
import {
  MAX_SIGN_IN_PAGES,
  partialReadCode,
  readSignInWindow,
  type SignInWindow,
} from '../shared/core/signInWatchRun';
import { formatTable } from './output';

/**
 * `offboard report --wave ID`: the effect of an `offboard enqueue` MFA wave, from the Entra sign-in
 * log (AuditLog.Read.All; the tenant needs Entra ID P1 or P2): of the wave's people whose sessions
 * were revoked, who has signed in again with MFA, who has not signed in yet, who signed in without.
 */
export interface WaveEffect {
  wave: string;
  since: string;
  until: string;
  /** The wave's MFA events in the audit window (`guardrail.approval` or the enqueue id names it). */
  events: number;
  /** Of those, people whose revocation was verified: the ones the log is read for. */
  revoked: number;
  withMfa: number;
  notSignedIn: number;
  withoutMfa: number;
  /** Signed in, and the log does not say whether with MFA (authenticationRequirement absent). */
  mfaNotStated: number;
  /** The Graph version the log was read from (SIGNIN_LOG_GRAPH_VERSION): only beta states MFA. */
  signInLog: SignInLogVersion;
  /** Why people are counted "MFA not stated", when the version read cannot state it. */
  mfaNotStatedReason?: string;
  /** The log could not be read for them (licence, permission, Graph failing): not counted above. */
  unavailable: number;
  /** Why, when some were unavailable (the first error). */
  unavailableReason?: string;
  /** The people in each group (object id and UPN), for follow-up. */
  people: Record<MfaEffect, { objectId: string; userPrincipalName?: string }[]>;
}

/** Why a report read from v1.0 cannot split sign-ins by MFA (learn.microsoft.com, signIn v1.0). */
export const V1_STATES_NO_MFA =
  'the v1.0 sign-in log does not state MFA (authenticationRequirement is a beta property): set SIGNIN_LOG_GRAPH_VERSION=beta to split these people';

/** What a partial read of a person's sign-ins means for the report. */
const PARTIAL_READS: Record<string, string> = {
  BeyondRetention: 'revoked more than 30 days ago; Entra keeps sign-ins 30 days',
  Truncated: `more than ${MAX_SIGN_IN_PAGES} pages of sign-ins`,
  UnreadableSignIns: 'sign-in log entries could not be read',
};

/** The wave's records: its MFA events (the approval they ran under, or the ids enqueue gives). */
export function waveRecords(records: readonly AuditRecord[], wave: string): AuditRecord[] {
  return records.filter(
    (r) =>
      kindOfType(r.eventType ?? '') === 'mfa.enabled' &&
      (r.guardrail?.approval === wave || r.eventId.startsWith(`mfa.enabled-${wave}-`)),
  );
}

/** Reads each revoked person's sign-ins since their revocation, a few at a time. */
export async function buildWaveEffect(
  records: readonly AuditRecord[],
  wave: string,
  signIns: SignInLog,
  since: Date,
  now: Date,
  signInLog: SignInLogVersion,
): Promise<WaveEffect> {
  const ofWave = waveRecords(records, wave);
  // One person once (a redelivered or repeated event has one record per content, not per person),
  // from their latest revocation in the wave: a sign-in before it no longer holds a session.
  const people = new Map<string, { objectId: string; userPrincipalName?: string; from: string }>();
  for (const r of ofWave) {
    const from = r.verification?.signInSessionsValidFrom;
    if (r.outcome !== 'succeeded' || r.verification?.verified !== true || from === undefined)
      continue;
    if (r.objectId === undefined) continue;
    const known = people.get(r.objectId.toLowerCase());
    if (known !== undefined && Date.parse(known.from) >= Date.parse(from)) continue;
    people.set(r.objectId.toLowerCase(), {
      objectId: r.objectId,
      ...(r.userPrincipalName === undefined ? {} : { userPrincipalName: r.userPrincipalName }),
      from,
    });
  }
  const effect: WaveEffect = {
    wave,
    since: since.toISOString(),
    until: now.toISOString(),
    events: ofWave.length,
    revoked: people.size,
    withMfa: 0,
    notSignedIn: 0,
    withoutMfa: 0,
    mfaNotStated: 0,
    signInLog,
    unavailable: 0,
    people: { 'with-mfa': [], 'not-signed-in': [], 'without-mfa': [], 'mfa-not-stated': [] },
  };
  const queue = [...people.values()];
  const worker = async () => {
    for (let person = queue.shift(); person !== undefined; person = queue.shift()) {
      let read: SignInWindow;
      try {
        read = await readSignInWindow(
          signIns,
          person.objectId,
          person.from,
          now.toISOString(),
          now,
        );
      } catch (error) {
        effect.unavailable += 1;
        const e = toOffboardingError(error);
        effect.unavailableReason ??= `${e.code}: ${e.message}`;
        continue;
      }
      const result = mfaEffect(read.entries, person.from);
      // Unread pages, entries or days could hold a sign-in with MFA: only "with MFA" is proven by
      // what was read.
      const partial = partialReadCode(read);
      if (result !== 'with-mfa' && partial !== undefined) {
        effect.unavailable += 1;
        effect.unavailableReason ??= `${partial}: ${PARTIAL_READS[partial] ?? 'the log was read in part'}`;
        continue;
      }
      effect.people[result].push({
        objectId: person.objectId,
        ...(person.userPrincipalName === undefined
          ? {}
          : { userPrincipalName: person.userPrincipalName }),
      });
    }
  };
  // A few reads at a time: the sign-in log has its own, low request limits.
  await Promise.all([worker(), worker(), worker(), worker()]);
  effect.withMfa = effect.people['with-mfa'].length;
  effect.notSignedIn = effect.people['not-signed-in'].length;
  effect.withoutMfa = effect.people['without-mfa'].length;
  effect.mfaNotStated = effect.people['mfa-not-stated'].length;
  if (effect.mfaNotStated > 0 && signInLog === 'v1.0') effect.mfaNotStatedReason = V1_STATES_NO_MFA;
  for (const list of Object.values(effect.people))
    list.sort((a, b) => a.objectId.localeCompare(b.objectId));
  return effect;
}

/** For a terminal: counts, then the people who signed in without MFA (they need a follow-up). */
export function formatWaveEffect(effect: WaveEffect): string {
  const lines = [
    `MFA wave ${effect.wave}: ${effect.events} event(s) in the audit since ${effect.since}, ${effect.revoked} person(s) revoked; sign-ins read up to ${effect.until}.`,
    '',
    formatTable(
      ['since their revocation', 'people'],
      [
        ['signed in with MFA', String(effect.withMfa)],
        ['not signed in yet', String(effect.notSignedIn)],
        ['signed in without MFA', String(effect.withoutMfa)],
        ['signed in, MFA not stated by the log', String(effect.mfaNotStated)],
        ['sign-in log unavailable', String(effect.unavailable)],
      ],
    ),
  ];
  if (effect.unavailableReason !== undefined)
    lines.push('', formatTable(['sign-in log unavailable because'], [[effect.unavailableReason]]));
  if (effect.mfaNotStatedReason !== undefined)
    lines.push('', formatTable(['MFA not stated because'], [[effect.mfaNotStatedReason]]));
  if (effect.withoutMfa > 0)
    lines.push(
      '',
      formatTable(
        ['signed in without MFA: object id', 'user principal name'],
        effect.people['without-mfa'].map((p) => [p.objectId, p.userPrincipalName ?? '']),
      ),
    );
  return lines.join('\n');
}
