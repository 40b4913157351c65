import { EVENT_TABLE_HEADER, eventRow, tableRow } from '../../dev/eventTable';
import type { AuditRecord } from '../../shared/core/ports';

const record: AuditRecord = {
  identityKey: 'k',
  contentDigest: 'd',
  eventId: 'sample-leaver-with-a-rather-long-event-id',
  user: 'carol_fabrikam.com#EXT#@contoso.onmicrosoft.com',
  requestedActions: ['disableAccount', 'resetPassword', 'revokeSignInSessions'],
  actions: [
    { action: 'disableAccount', status: 'failed' },
    { action: 'resetPassword', status: 'failed' },
    { action: 'revokeSignInSessions', status: 'succeeded' },
  ],
  verification: { verified: true, signInSessionsValidFrom: '2026-12-05T14:00:00Z' },
  graphRequestIds: [],
  outcome: 'failed',
  errorCode: 'OnPremisesMastered',
  errorMessage: `disableAccount: the user is synchronised from on-premises AD\n${'x'.repeat(200)}`,
  notes: [],
  dryRun: false,
  attempts: 1,
  duplicates: 0,
  messageId: 'm',
  firstAttemptAt: '2026-12-05T14:00:00Z',
  lastAttemptAt: '2026-12-05T14:00:00Z',
};

describe('the sandbox event table', () => {
  it.each([80, 100, 120, 200])('keeps each row within a %i-column terminal', (width) => {
    for (const row of [
      tableRow(EVENT_TABLE_HEADER, width),
      eventRow(record.eventId, record, width),
    ])
      expect(row.length).toBeLessThanOrEqual(width);
    expect(eventRow(record.eventId, record, width)).toMatch(
      /^sample-\S*\s+carol\S*\s+failed\s+disable FA\S*.*\s+yes\s+OnPremisesMastered/,
    );
  });

  it('writes the whole note, escaped, on one line when there is no terminal', () => {
    const row = eventRow(record.eventId, record, undefined);
    expect(row).not.toContain('\n');
    expect(row).toContain('synchronised from on-premises AD\\u000a' + 'x'.repeat(200));
    expect(row).toMatch(/disable FAILED, reset FAILED, revoke ok\s+yes/);
  });
});
