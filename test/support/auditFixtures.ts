import { randomUUID } from 'node:crypto';
import { accessCutoff } from '../../shared/core/accessCutoff';
import type { AuditRecord } from '../../shared/core/ports';

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export type FixtureOverrides = Partial<AuditRecord> & {
  /** The last attempt this long before `now` (default an hour); the first attempt too, unless given. */
  lastAgoMs?: number;
  /** A verified revocation this long after it was due (first attempt, or the leave date if later). */
  latencySeconds?: number;
};

/**
 * An audit record as the report reads it: a departure unless `eventType` says otherwise, with the
 * cut-off a verified departure carries. Its event `time` is eight days before its first attempt,
 * like a sample event with a fixed time: reports must never measure from it.
 */
export function fixtureRecord(now: number, overrides: FixtureOverrides = {}): AuditRecord {
  const ago = (ms: number) => new Date(now - ms).toISOString();
  const { lastAgoMs = HOUR, latencySeconds, ...fields } = overrides;
  const firstAttemptAt = fields.firstAttemptAt ?? ago(lastAgoMs);
  const due = Math.max(Date.parse(firstAttemptAt), Date.parse(fields.effectiveAt ?? '') || 0);
  const revokedAt = new Date(due + (latencySeconds ?? 0) * 1000).toISOString();
  const departure = (fields.eventType ?? 'employee.leaving') === 'employee.leaving';
  const cutoff = departure ? accessCutoff({ revokedAt, guest: false, disabled: true }) : undefined;
  const verified =
    latencySeconds === undefined
      ? {}
      : {
          verification: { verified: true, signInSessionsValidFrom: revokedAt },
          ...(cutoff === undefined ? {} : { accessCutoff: cutoff }),
        };
  return {
    identityKey: randomUUID(),
    contentDigest: 'digest',
    eventId: `evt-${randomUUID().slice(0, 8)}`,
    eventType: 'employee.leaving',
    route: 'employeeLeaving',
    source: '/hr/workday',
    user: `leaver.${randomUUID().slice(0, 4)}@contoso.com`,
    requestedActions: ['disableAccount', 'revokeSignInSessions'],
    actions: [],
    graphRequestIds: [],
    outcome: 'succeeded',
    notes: [],
    dryRun: false,
    attempts: 1,
    duplicates: 0,
    eventTime: ago(lastAgoMs + 8 * DAY),
    firstAttemptAt,
    lastAttemptAt: ago(lastAgoMs),
    ...verified,
    ...fields,
  };
}
