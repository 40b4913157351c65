/**
 * When access really ends: the figures from the verified revocation time, the three kinds of
 * account (member, guest disabled, guest still enabled), and the record of a run carrying it only
 * when the run succeeded with a verified revocation.
 */
import {
  accessCutoff,
  CAE_APPS,
  revocationDueAt,
  revocationLatencyMs,
} from '../../shared/core/accessCutoff';
import { delivery, leaving, makeCore, mfaEnabled } from './harness';

const REVOKED = '2026-11-30T09:00:00Z';

describe('accessCutoff', () => {
  it('a disabled member: CAE apps within 15 min, other apps within the hour', () => {
    const cutoff = accessCutoff({ revokedAt: REVOKED, guest: false, disabled: true });
    expect(cutoff).toEqual({
      caeAppsBy: '2026-11-30T09:15:00.000Z',
      otherAppsBy: '2026-11-30T10:00:00.000Z',
      note: expect.stringContaining(CAE_APPS) as unknown,
    });
    expect(cutoff?.note).toMatch(/up to 15 min/);
    expect(cutoff?.note).toMatch(/up to an hour by default/);
    expect(cutoff?.note).not.toMatch(/sign in again/);
  });

  it('a member left enabled (MFA roll-out): the same times, and the note says they can sign in again', () => {
    const cutoff = accessCutoff({ revokedAt: REVOKED, guest: false, disabled: false });
    expect(cutoff?.caeAppsBy).toBe('2026-11-30T09:15:00.000Z');
    expect(cutoff?.otherAppsBy).toBe('2026-11-30T10:00:00.000Z');
    expect(cutoff?.note).toMatch(/can sign in again/);
  });

  it('a disabled guest: no CAE time (guests are not covered), tokens for this tenant expire within the hour', () => {
    const cutoff = accessCutoff({ revokedAt: REVOKED, guest: true, disabled: true });
    expect(cutoff?.caeAppsBy).toBeUndefined();
    expect(cutoff?.otherAppsBy).toBe('2026-11-30T10:00:00.000Z');
    expect(cutoff?.note).toMatch(/not cut off in the home tenant/);
  });

  it('a guest left enabled: no time at all, access does not end', () => {
    const cutoff = accessCutoff({ revokedAt: REVOKED, guest: true, disabled: false });
    expect(cutoff).toEqual({ note: expect.stringMatching(/access does not end/) as unknown });
  });

  it('no time without a revocation time', () => {
    expect(accessCutoff({ revokedAt: 'not a time', guest: false, disabled: true })).toBeUndefined();
  });
});

describe('revocationLatencyMs', () => {
  const verification = { verified: true, signInSessionsValidFrom: '2026-11-30T09:00:42Z' };

  it('is from when the app first took the event to the verified revocation', () => {
    expect(revocationLatencyMs({ firstAttemptAt: '2026-11-30T09:00:00Z', verification })).toBe(
      42_000,
    );
  });

  it("ignores the event's own time: an old or forged time does not move it", () => {
    const record = { firstAttemptAt: '2026-11-30T09:00:00Z', verification };
    for (const eventTime of ['2026-11-22T10:00:00Z', '2099-01-01T00:00:00Z'])
      expect(revocationLatencyMs({ ...record, eventTime } as typeof record)).toBe(42_000);
  });

  it('a departure with a leave date is due on the leave date, not when it was scheduled', () => {
    expect(
      revocationLatencyMs({
        firstAttemptAt: '2026-11-20T09:00:00Z',
        effectiveAt: '2026-11-30T09:00:30Z',
        verification,
      }),
    ).toBe(12_000);
    expect(
      revocationDueAt({ firstAttemptAt: '2026-11-30T09:00:00Z', effectiveAt: '2026-11-01' }),
    ).toBe(Date.parse('2026-11-30T09:00:00Z'));
  });

  it('is undefined without a verified revocation or a first attempt', () => {
    const unverified = { ...verification, verified: false };
    expect(
      revocationLatencyMs({ firstAttemptAt: '2026-11-30T09:00:00Z', verification: unverified }),
    ).toBeUndefined();
    expect(revocationLatencyMs({ verification })).toBeUndefined();
  });
});

describe('the record of a run', () => {
  it('a succeeded departure carries the cut-off from its verified revocation', async () => {
    const core = makeCore();
    const { record } = await core.process(delivery(leaving('alice@contoso.com')));
    expect(record.outcome).toBe('succeeded');
    expect(record.verification?.signInSessionsValidFrom).toBe(REVOKED);
    expect(record.accessCutoff).toEqual(
      accessCutoff({ revokedAt: REVOKED, guest: false, disabled: true }),
    );
  });

  it('a guest departure gets the guest cut-off', async () => {
    const core = makeCore();
    const { record } = await core.process(
      delivery(leaving('carol_fabrikam.com#EXT#@contoso.onmicrosoft.com')),
    );
    expect(record.outcome).toBe('succeeded');
    expect(record.accessCutoff?.caeAppsBy).toBeUndefined();
    expect(record.accessCutoff?.note).toMatch(/not cut off in the home tenant/);
  });

  it('an MFA roll-out (revoke only) says the user can sign in again', async () => {
    const core = makeCore();
    const { record } = await core.process(
      delivery(mfaEnabled('bob@contoso.com'), { route: 'mfaEnabled' }),
    );
    expect(record.outcome).toBe('succeeded');
    expect(record.accessCutoff?.note).toMatch(/can sign in again/);
  });

  it('no cut-off while the revocation is unproven', async () => {
    const core = makeCore();
    core.directory.lagAfterRevoke('alice@contoso.com', 1);
    const { record } = await core.process(delivery(leaving('alice@contoso.com')));
    expect(record.outcome).toBe('failed');
    expect(record.verification?.verified).toBe(false);
    expect(record.accessCutoff).toBeUndefined();
  });

  it('no cut-off for a dry run', async () => {
    const core = makeCore({ dryRun: true });
    const { record } = await core.process(delivery(leaving('alice@contoso.com')));
    expect(record.outcome).toBe('dry-run');
    expect(record.accessCutoff).toBeUndefined();
  });
});
