import {
  compareAuditWithLog,
  differingFields,
  formatVerifyReport,
  IN_FLIGHT_MS,
  verifyAudit,
} from '../../cli/auditVerify';
import {
  LOG_FORMAT_VERSION,
  parseBlob,
  type LogLine,
  type ReadLogLine,
} from '../../shared/adapters/immutableAuditLog';
import type { AuditRecord } from '../../shared/core/ports';

const UNTIL = new Date('2026-11-30T12:00:00.000Z');
const SINCE = new Date('2026-11-29T12:00:00.000Z');
const AN_HOUR_AGO = '2026-11-30T11:00:00.000Z';

function record(n: number, changes: Partial<AuditRecord> = {}): AuditRecord {
  return {
    identityKey: `identity-${n}`,
    contentDigest: `digest-${n}`,
    eventId: `evt-${n}`,
    eventType: 'employee.leaving',
    source: '/hr/workday',
    user: `user${n}@contoso.com`,
    objectId: `0000000${n}-aaaa-4000-8000-00000000000${n}`,
    requestedActions: ['revokeSignInSessions', 'disableAccount'],
    actions: [
      { action: 'revokeSignInSessions', status: 'succeeded', requestId: `r${n}` },
      { action: 'disableAccount', status: 'succeeded' },
    ],
    verification: { verified: true, signInSessionsValidFrom: AN_HOUR_AGO },
    graphRequestIds: [`r${n}`],
    outcome: 'succeeded',
    notes: [],
    dryRun: false,
    attempts: 1,
    duplicates: 0,
    firstAttemptAt: AN_HOUR_AGO,
    lastAttemptAt: AN_HOUR_AGO,
    ...changes,
  };
}

let lineNumber = 0;
function logged(rec: AuditRecord, appendedAt = AN_HOUR_AGO): ReadLogLine {
  const entry: LogLine = {
    format: LOG_FORMAT_VERSION,
    identityKey: rec.identityKey,
    contentDigest: rec.contentDigest,
    appendedAt,
    writer: 'w1',
    // A copy, as a JSON line read back would be.
    record: JSON.parse(JSON.stringify(rec)) as AuditRecord,
  };
  return { blob: '2026/11/30/11/w1-0000.jsonl', line: ++lineNumber, entry };
}

const compare = (
  tableRecords: AuditRecord[],
  log: ReadLogLine[],
  modifiedAt?: ReadonlyMap<string, string>,
) =>
  compareAuditWithLog({
    tableRecords,
    log,
    since: SINCE,
    until: UNTIL,
    ...(modifiedAt === undefined ? {} : { modifiedAt }),
  });

/** The table's own modification times, by record key, as the comparison takes them. */
const modified = (...entries: Array<[AuditRecord, string]>) =>
  new Map(entries.map(([r, at]) => [`${r.identityKey}\u0000${r.contentDigest}`, at]));

describe('compareAuditWithLog', () => {
  it('is clean when every final record matches its latest line, whatever the key order', () => {
    const a = record(1);
    const reordered = Object.fromEntries(Object.entries(a).reverse()) as unknown as AuditRecord;
    const report = compare([a, record(2)], [logged(reordered), logged(record(2))]);
    expect(report).toMatchObject({ clean: true, finalRecords: 2, logLines: 2, pending: [] });
  });

  it('ignores duplicates and lastDuplicateAt, and only those', () => {
    const table = record(1, { duplicates: 3, lastDuplicateAt: '2026-11-30T11:10:00.000Z' });
    expect(compare([table], [logged(record(1))]).clean).toBe(true);
    expect(differingFields(record(1, { attempts: 2, duplicates: 5 }), record(1))).toEqual([
      'attempts',
    ]);
  });

  it('compares the object id without regard to case (the table keeps it lower-cased)', () => {
    const upper = record(1, { objectId: 'ABCDEF00-AAAA-4000-8000-000000000001' });
    const lower = record(1, { objectId: 'abcdef00-aaaa-4000-8000-000000000001' });
    expect(differingFields(lower, upper)).toEqual([]);
  });

  it('names every field an edit changed, nested ones by their top-level field', () => {
    const edited = record(1, {
      outcome: 'refused',
      actions: [{ action: 'revokeSignInSessions', status: 'failed' }],
      ticket: 'INC-1',
    });
    const report = compare([edited], [logged(record(1))]);
    expect(report.clean).toBe(false);
    expect(report.differs).toEqual([
      {
        identityKey: 'identity-1',
        contentDigest: 'digest-1',
        eventId: 'evt-1',
        fields: ['actions', 'outcome', 'ticket'],
        loggedAt: AN_HOUR_AGO,
      },
    ]);
  });

  it('compares with the latest line of the key, not any line', () => {
    const held = record(1, { outcome: 'held' });
    const succeeded = record(1, { lastAttemptAt: '2026-11-30T11:30:00.000Z' });
    const log = [logged(succeeded, '2026-11-30T11:30:01.000Z'), logged(held, AN_HOUR_AGO)];
    // The table rewritten back to an earlier, once-true version is still a difference.
    expect(compare([held], log).differs.map((d) => d.fields)).toEqual([
      ['lastAttemptAt', 'outcome'],
    ]);
    expect(compare([succeeded], log).clean).toBe(true);
  });

  it('catches an edit that a later duplicate delivery re-logged: the lines changed without a run', () => {
    const edited = record(1, { ticket: 'T-rewritten', duplicates: 1 });
    const log = [logged(record(1), AN_HOUR_AGO), logged(edited, '2026-11-30T11:30:00.000Z')];
    const report = compare([edited], log);
    expect(report.differs).toEqual([]);
    expect(report.changedWithoutRun).toEqual([
      expect.objectContaining({
        eventId: 'evt-1',
        fields: ['ticket'],
        loggedAt: '2026-11-30T11:30:00.000Z',
        previouslyLoggedAt: AN_HOUR_AGO,
      }),
    ]);
    expect(report.clean).toBe(false);
    // A duplicate delivery's copy, and a new run's record, are no such change.
    const duplicate = record(1, { duplicates: 2, lastDuplicateAt: '2026-11-30T11:40:00.000Z' });
    const rerun = record(1, {
      attempts: 2,
      lastAttemptAt: '2026-11-30T11:50:00.000Z',
      ticket: 'T-2',
    });
    const history = [
      logged(record(1, { outcome: 'held' }), '2026-11-30T10:00:00.000Z'),
      logged(record(1), AN_HOUR_AGO),
      logged(duplicate, '2026-11-30T11:40:00.000Z'),
      logged(rerun, '2026-11-30T11:50:00.000Z'),
    ];
    expect(compare([rerun], history)).toMatchObject({ clean: true, changedWithoutRun: [] });
  });

  it('reports a final record missing from the log, and not a record that is not final', () => {
    const report = compare(
      [
        record(1),
        record(2, { outcome: 'in-progress' }),
        record(3, { outcome: 'failed', retryable: true }),
      ],
      [],
    );
    expect(report.missingFromLog).toEqual([
      expect.objectContaining({
        eventId: 'evt-1',
        outcome: 'succeeded',
        lastAttemptAt: AN_HOUR_AGO,
      }),
    ]);
    expect(report.finalRecords).toBe(1);
  });

  it('reports log entries whose record is gone or no longer final', () => {
    const report = compare(
      [record(2, { outcome: 'in-progress' })],
      [logged(record(1)), logged(record(2))],
    );
    expect(report.goneFromTable).toEqual([
      expect.objectContaining({ eventId: 'evt-1', loggedOutcome: 'succeeded' }),
    ]);
    expect(report.noLongerFinal).toEqual([
      expect.objectContaining({
        eventId: 'evt-2',
        outcome: 'in-progress',
        loggedOutcome: 'succeeded',
      }),
    ]);
    expect(report.clean).toBe(false);
  });

  it('lists records changed in the last minutes (by their times and the table clock) as pending', () => {
    const justNow = new Date(UNTIL.getTime() - IN_FLIGHT_MS / 2).toISOString();
    const written = record(1, { lastAttemptAt: justNow });
    const discarded = record(2, {
      outcome: 'discarded',
      guardrail: { discard: { by: 'op', reason: 'x', at: justNow } },
    });
    const times = modified([written, justNow], [discarded, justNow]);
    const report = compare([written, discarded], [logged(record(2, { outcome: 'held' }))], times);
    expect(report.pending.map((p) => [p.eventId, p.finding])).toEqual([
      ['evt-1', 'missingFromLog'],
      ['evt-2', 'differs'],
    ]);
    expect(report.clean).toBe(true);
    // An edit that leaves the record's times alone is no change in flight.
    expect(compare([record(3, { ticket: 'X' })], [logged(record(3))]).clean).toBe(false);
    // Times a record states do not keep it in flight once the table says it changed earlier.
    const earlier = new Date(UNTIL.getTime() - IN_FLIGHT_MS - 1).toISOString();
    const late = compare([written], [], modified([written, earlier]));
    expect(late.missingFromLog.map((m) => m.eventId)).toEqual(['evt-1']);
    expect(late.clean).toBe(false);
  });

  it('an edit that sets lastDuplicateAt in the future is found twice over, never pending', () => {
    const edited = record(1, { ticket: 'FORGED', lastDuplicateAt: '2099-01-01T00:00:00.000Z' });
    const report = compare([edited], [logged(record(1))]);
    expect(report.futureTimes).toEqual([
      expect.objectContaining({ eventId: 'evt-1', fields: ['lastDuplicateAt'] }),
    ]);
    expect(report.differs.map((d) => d.fields)).toEqual([['ticket']]);
    expect(report.pending).toEqual([]);
    expect(report.clean).toBe(false);
    // A forged final record with no log line: the same.
    const forged = record(2, { lastDuplicateAt: '2099-01-01T00:00:00.000Z' });
    const alone = compare([forged], []);
    expect(alone.futureTimes.map((f) => f.eventId)).toEqual(['evt-2']);
    expect(alone.missingFromLog.map((m) => m.eventId)).toEqual(['evt-2']);
  });

  it('duplicates and lastDuplicateAt may only move forward from the line', () => {
    const line = logged(record(1, { duplicates: 2, lastDuplicateAt: AN_HOUR_AGO }));
    const later = new Date(UNTIL.getTime() - 60_000).toISOString();
    expect(compare([record(1, { duplicates: 3, lastDuplicateAt: later })], [line]).clean).toBe(
      true,
    );
    const back = compare(
      [record(1, { duplicates: 1, lastDuplicateAt: SINCE.toISOString() })],
      [line],
    );
    expect(back.wentBack.map((w) => w.fields)).toEqual([['duplicates', 'lastDuplicateAt']]);
    expect(back.clean).toBe(false);
  });

  it('reports lines it cannot read, and never takes them for records', () => {
    const good = logged(record(1));
    const text = [
      JSON.stringify(good.entry),
      'not json',
      JSON.stringify({ ...good.entry, format: 2 }),
      JSON.stringify({ ...good.entry, identityKey: 'other' }),
      '',
    ].join('\n');
    const report = compare([record(1)], parseBlob('b.jsonl', text));
    expect(report.unreadable.map((u) => [u.line, u.reason])).toEqual([
      [2, 'not JSON'],
      [3, 'format 2 (this reader knows 1)'],
      [4, "the key does not match the record's"],
    ]);
    expect(report.differs).toEqual([]);
    expect(report.clean).toBe(false);
  });

  it('prints every finding on its own escaped line', () => {
    const evil = record(1, { eventId: 'evt-\u001b[2Jx' });
    const text = formatVerifyReport(compare([evil], []));
    expect(text).toContain('evt-\\u001b[2Jx');
    expect(text).not.toContain('\u001b');
    expect(text).toMatch(/FOUND DIFFERENCES/);
    expect(formatVerifyReport(compare([], []))).toMatch(/^Clean/m);
  });
});

describe('verifyAudit', () => {
  it('reads by key a logged record last attempted before the period', async () => {
    const old = record(1, { lastAttemptAt: '2026-11-20T00:00:00.000Z', duplicates: 1 });
    const reads: string[] = [];
    const report = await verifyAudit(
      {
        listSince: () => Promise.resolve([]),
        read: (key) => {
          reads.push(key.identityKey);
          return Promise.resolve({ record: old });
        },
      },
      { readBetween: () => Promise.resolve({ blobs: ['b'], lines: [logged(old)] }) },
      SINCE,
      UNTIL,
    );
    expect(reads).toEqual(['identity-1']);
    expect(report).toMatchObject({ clean: true, finalRecords: 1, blobs: 1 });
  });
});
