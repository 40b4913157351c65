/**
 * The evidence page (`offboard report --html`) and the sign-in watch: a departure's watch shows in
 * a column of its own, the incident first; with the watch off for every departure the page has no
 * such column (nothing changes).
 */
import { buildEvidence } from '../../cli/reportEvidence';
import { renderEvidenceHtml } from '../../cli/reportHtml';
import type { AuditRecord } from '../../shared/core/ports';
import { HOUR, fixtureRecord } from '../support/auditFixtures';

const NOW = Date.now();
const since = new Date(NOW - 24 * HOUR);
const until = new Date(NOW);
const at = (ms: number) => new Date(NOW + ms).toISOString();

function page(records: AuditRecord[]): string {
  return renderEvidenceHtml(buildEvidence(records, [], 0, since, until), until);
}

describe('the evidence page and the sign-in watch', () => {
  it('shows what the watch found, the incident before a later check, and the next check', () => {
    const incident: AuditRecord = {
      ...fixtureRecord(NOW, { eventId: 'dep-incident' }),
      signInWatch: {
        from: at(-2 * HOUR),
        cutoffAt: at(-2 * HOUR + 900_000),
        announcedBy: 0,
        checks: [
          {
            dueAt: at(-HOUR),
            result: {
              verdict: 'signin-after-cutoff',
              checkedAt: at(-HOUR),
              successesAfterCutoff: 2,
            },
          },
          { dueAt: at(22 * HOUR) },
        ],
      },
    };
    const quiet: AuditRecord = {
      ...fixtureRecord(NOW, { eventId: 'dep-quiet' }),
      signInWatch: {
        from: at(-2 * HOUR),
        cutoffAt: at(-2 * HOUR + 900_000),
        checks: [{ dueAt: at(-HOUR), result: { verdict: 'no-sign-in', checkedAt: at(-HOUR) } }],
      },
    };
    const html = page([incident, quiet]);
    expect(html).toContain('<th>sign-in watch</th>');
    expect(html).toContain(`signed in after the cut-off (2); next check ${at(22 * HOUR)}`);
    expect(html).toContain('watched: no sign-in');
  });

  it('without the watch the page has no watch column', () => {
    expect(page([fixtureRecord(NOW)])).not.toContain('sign-in watch');
  });
});
