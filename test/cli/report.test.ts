/**
 * `offboard report` as ops run it (a child process) over audit records written into Azurite through
 * the table adapter: every figure is compared with a count made by hand from the fixtures below.
 */
import { InvocationContext } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';
import { createQueueHandler, DEPARTURE_DELAYED } from '../../shared/adapters/functionHandler';
import { buildReport } from '../../cli/report';
import { accessCutoff } from '../../shared/core/accessCutoff';
import type { AuditRecord } from '../../shared/core/ports';
import { DAY, fixtureRecord, HOUR, type FixtureOverrides } from '../support/auditFixtures';
import { runCli } from '../support/cli';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let cliEnv: Record<string, string>;

const NOW = Date.now();
const ago = (ms: number) => new Date(NOW - ms).toISOString();

const record = (overrides: FixtureOverrides = {}) => fixtureRecord(NOW, overrides);

const retryable = (errorCode: string) =>
  record({ outcome: 'failed', errorCode, errorMessage: 'transient', retryable: true });

// Hand count over the default 7 days: 19 records (the last fixture is 10 days old).
//   outcomes: succeeded 6, failed 3, held 3, refused 1, scheduled 1, in-progress 1, dry-run 1,
//   discarded 1, delayed 1, superseded 1
//   guardrail: 1 trip, 2 held (one more held was released), 1 released, 1 discarded
//   error codes: Throttled 2 (one of them the delayed departure), GraphUnavailable, Forbidden,
//   ProtectedAccount, Deferred: 1 each
//   latency (10, 20, 30, 40, 100 s after the first attempt; nearest rank): p50 30, p95 100, max 100
//   (every event time is eight days older, like the sample that once gave a p95 of eight days)
//   open failures 3 (2 failed and retryable, 1 delayed), delayed 1, refused 1,
//   held 1 scheduled + 1 deferred, duplicate deliveries 3
// Over --since 1d: the 2-day-old success drops out: 18 records, succeeded 5, latency p50 20, p95 40, max 40.
const cutoff = accessCutoff({ revokedAt: ago(HOUR), guest: false, disabled: true });
const succeededWithCutoff = record({
  latencySeconds: 10,
  ...(cutoff ? { accessCutoff: cutoff } : {}),
});
const FIXTURES: AuditRecord[] = [
  succeededWithCutoff,
  record({ latencySeconds: 20 }),
  record({ latencySeconds: 30 }),
  record({ latencySeconds: 40 }),
  record({ latencySeconds: 100, lastAgoMs: 2 * DAY }),
  record({}), // no verified revocation: no latency
  retryable('Throttled'),
  retryable('GraphUnavailable'),
  record({ outcome: 'failed', errorCode: 'Forbidden', retryable: false }),
  record({ outcome: 'refused', errorCode: 'ProtectedAccount', retryable: false }),
  record({ outcome: 'scheduled', effectiveAt: ago(-DAY) }),
  record({ outcome: 'in-progress', errorCode: 'Deferred', retryable: true }),
  record({ outcome: 'dry-run', dryRun: true, duplicates: 3 }),
  record({
    outcome: 'held',
    guardrail: { heldAt: ago(HOUR), heldReason: 'tripped', tripped: true },
  }),
  record({ outcome: 'held', guardrail: { heldAt: ago(HOUR), heldReason: 'tripped' } }),
  record({
    outcome: 'held',
    guardrail: {
      heldAt: ago(HOUR),
      release: { approvalId: 'a1', by: 'ops', reason: 'checked', at: ago(HOUR) },
    },
  }),
  record({
    outcome: 'discarded',
    guardrail: { heldAt: ago(HOUR), discard: { by: 'ops', reason: 'bad feed', at: ago(HOUR) } },
  }),
  // Due three hours ago, still throttled: announced delayed, a retry scheduled.
  record({
    outcome: 'delayed',
    errorCode: 'Throttled',
    retryable: true,
    effectiveAt: ago(3 * HOUR),
    delayedAt: ago(2 * HOUR),
    nextAttemptAt: ago(-HOUR),
  }),
  // A cancellation came first: nothing written, nothing to do.
  record({
    outcome: 'superseded',
    supersededBy: { eventId: 'evt-cancel', source: '/hr/workday', kind: 'cancel', at: ago(DAY) },
  }),
  record({ outcome: 'failed', errorCode: 'Throttled', retryable: true, lastAgoMs: 10 * DAY }),
];

beforeAll(async () => {
  world = await startWorld();
  cliEnv = { ...world.env, ...world.identity.envFor() };
  for (const fixture of FIXTURES) {
    expect(await world.runtime.audit.create(fixture)).toBeDefined();
  }
});
afterAll(async () => {
  await world.stop();
});

describe('offboard report', () => {
  it('--json: one object whose figures equal the hand count over the default 7 days', async () => {
    const run = await runCli(['report', '--json'], cliEnv);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(report).toEqual({
      since: expect.any(String) as unknown,
      until: expect.any(String) as unknown,
      records: 19,
      byOutcome: {
        succeeded: 6,
        failed: 3,
        held: 3,
        discarded: 1,
        'dry-run': 1,
        'in-progress': 1,
        refused: 1,
        scheduled: 1,
        delayed: 1,
        superseded: 1,
      },
      byErrorCode: {
        Deferred: 1,
        Forbidden: 1,
        GraphUnavailable: 1,
        ProtectedAccount: 1,
        Throttled: 2,
      },
      latency: { count: 5, p50Seconds: 30, p95Seconds: 100, maxSeconds: 100 },
      openFailures: 3,
      delayed: 1,
      refused: 1,
      held: { scheduled: 1, deferred: 1 },
      duplicateDeliveries: 3,
      guardrail: { trips: 1, held: 2, released: 1, discarded: 1 },
    });
    const window = Date.parse(report.until as string) - Date.parse(report.since as string);
    expect(window).toBe(7 * DAY);
  });

  it('--since 1d narrows the window to the records last attempted in it', async () => {
    const run = await runCli(['report', '--since', '1d', '--json'], cliEnv);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      records: 18,
      byOutcome: { succeeded: 5 },
      latency: { count: 4, p50Seconds: 20, p95Seconds: 40, maxSeconds: 40 },
    });
  });

  it('an absolute --since takes everything from then', async () => {
    const run = await runCli(['report', '--since', ago(30 * DAY), '--json'], cliEnv);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      records: 20,
      byErrorCode: { Throttled: 3 },
      openFailures: 4,
    });
  });

  it('on a terminal: the same figures, one per line', async () => {
    const run = await runCli(['report'], cliEnv);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Offboarding report from \S+ to \S+: 19 audit record\(s\)/);
    expect(run.stdout).toMatch(/^succeeded\s+6$/m);
    expect(run.stdout).toMatch(/^delayed\s+1$/m);
    expect(run.stdout).toMatch(/^superseded\s+1$/m);
    expect(run.stdout).toMatch(/^Throttled\s+2$/m);
    expect(run.stdout).toMatch(
      /^event time to verified revocation\s+p50 30 s, p95 100 s, max 100 s \(5 events\)$/m,
    );
    expect(run.stdout).toMatch(/^open failures \(failed retryable, or delayed\)\s+3$/m);
    expect(run.stdout).toMatch(/^delayed departures \(past due, still retrying\)\s+1$/m);
    expect(run.stdout).toMatch(/^refused \(protected accounts\)\s+1$/m);
    expect(run.stdout).toMatch(/^held for the leave date \(scheduled\)\s+1$/m);
    expect(run.stdout).toMatch(/^held, waiting for budget or a claim \(Deferred\)\s+1$/m);
    expect(run.stdout).toMatch(/^guardrail trips\s+1$/m);
    expect(run.stdout).toMatch(
      /^held by the guardrail \(offboard guardrail status\)\s+2 held, 1 released, 1 discarded$/m,
    );
  });

  it('the cut-off a record carries survives the table (stored as JSON)', async () => {
    const [stored] = await world.runtime.audit.findByEventId(succeededWithCutoff.eventId);
    expect(cutoff?.caeAppsBy).toBeDefined();
    expect(stored?.accessCutoff).toEqual(cutoff);
  });

  it('escapes what the audit holds: no terminal control reaches the screen', async () => {
    const table = `Audit${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const other = world.runtimeWith({ AUDIT_TABLE_NAME: table });
    await other.audit.create(
      record({ outcome: 'failed', errorCode: 'Evil\u001b[2J\u202ecode', retryable: false }),
    );
    const env = { ...cliEnv, AUDIT_TABLE_NAME: table };
    const text = await runCli(['report'], env);
    expect(text.code).toBe(0);
    for (const raw of ['\u001b', '\u202e']) expect(text.stdout).not.toContain(raw);
    expect(text.stdout).toMatch(/^Evil\\u001b\[2J\\u202ecode\s+1$/m);
    const json = await runCli(['report', '--json'], env);
    for (const raw of ['\u001b', '\u202e']) expect(json.stdout).not.toContain(raw);
    expect((JSON.parse(json.stdout) as { byErrorCode: object }).byErrorCode).toEqual({
      'Evil\u001b[2J\u202ecode': 1,
    });
  });

  it('an empty window says so', async () => {
    const table = `Audit${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const run = await runCli(['report', '--since', '30m'], { ...cliEnv, AUDIT_TABLE_NAME: table });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/0 audit record\(s\)/);
    expect(run.stdout).toMatch(/^outcome: none$/m);
    expect(run.stdout).toMatch(/none with both an event time and a verified revocation/);
  });

  it('--help describes it and exits 0', async () => {
    const run = await runCli(['report', '--help'], cliEnv);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: offboard report \[options\]/);
    expect(run.stdout).toMatch(/--since <when>/);
    expect(run.stdout).toMatch(/default: 7d/);
  });

  it.each([['7x'], ['yesterday'], ['42'], ['2999-01-01T00:00:00Z'], ['-1d']])(
    'a bad --since %s is a usage error (64) and reads nothing',
    async (since) => {
      const run = await runCli(['report', '--since', since], {
        ...cliEnv,
        // Arguments are checked before anything is read: reading would end in a configuration error.
        AUDIT_TABLE_CONNECTION_STRING: 'not a connection string',
      });
      expect(run.code).toBe(64);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/--since <when>.*is invalid/);
      expect(run.stderr).toMatch(/Usage: offboard report/);
    },
  );
});

describe('buildReport', () => {
  it('a leave-date run waiting for budget is held once, as deferred', () => {
    const waiting = record({ outcome: 'scheduled', errorCode: 'Deferred', retryable: true });
    const report = buildReport(
      [waiting, record({ outcome: 'scheduled' })],
      new Date(0),
      new Date(),
    );
    expect(report.held).toEqual({ scheduled: 1, deferred: 1 });
  });
});

describe('the workbook reads what the function logs', () => {
  const bicep = readFileSync(
    join(__dirname, '..', '..', 'infra', 'modules', 'workbook.bicep'),
    'utf8',
  );
  /** The patterns of the workbook's KQL extract() calls, as JavaScript regular expressions. */
  const extracts = [...bicep.matchAll(/extract\(@"([^"]+)", 1, Message\)/g)].map(
    (m) => new RegExp((m[1] as string).replace(/\\'/g, "'")),
  );
  const extract = (field: string, line: string) =>
    extracts.find((r) => r.source.startsWith(field))?.exec(line)?.[1];

  it('outcome and errorCode parse from the lines as the Functions host writes them (util.format)', async () => {
    expect(extracts.map((r) => r.source.split(':')[0])).toEqual(
      expect.arrayContaining(['outcome', 'errorCode', 'revocationLatencySeconds']),
    );
    const lines: string[] = [];
    const context = () =>
      new InvocationContext({
        invocationId: randomUUID(),
        functionName: 'mfaEnabled',
        triggerMetadata: { messageId: randomUUID(), deliveryCount: 1, applicationProperties: {} },
        // The worker formats a log call's arguments with util.format before they reach App Insights.
        logHandler: (_level, ...args) => lines.push(format(...args)),
      });
    // An audit table of its own: these runs must not change the report figures above.
    const runtime = world.runtimeWith({
      AUDIT_TABLE_NAME: `Audit${randomUUID().replace(/-/g, '').slice(0, 20)}`,
    });
    const handler = createQueueHandler(() => runtime, 'mfaEnabled');
    const throttled = world.newUser();
    world.graph.injectFault({
      operation: 'revoke',
      userKey: throttled.id,
      status: 429,
      retryAfterSeconds: 1,
    });
    await handler(cloudEvent('mfa.enabled', { user: world.newUser().upn }), context());
    await handler(cloudEvent('mfa.enabled', { user: throttled.upn }), context());
    await expect(
      handler(cloudEvent('mfa.enabled', { user: 'nobody@contoso.com' }), context()),
    ).rejects.toThrow();

    const runs = lines.filter((l) => l.startsWith('Event ') && l.includes("outcome: '"));
    expect(runs).toHaveLength(3);
    const [succeeded, retried, deadLettered] = runs as [string, string, string];
    expect(extract('outcome', succeeded)).toBe('succeeded');
    expect(extract('errorCode', retried)).toBe('Throttled');
    expect(deadLettered.startsWith('Event failed permanently')).toBe(true);
    expect(extract('errorCode', deadLettered)).toBe('UserNotFound');
  });

  it("the runs filter selects every run line and nothing else (the workbook's `runs`)", () => {
    const filter = /'\| where Message startswith "([^"]+)" and Message contains "(.+)"'\n/.exec(
      bicep,
    );
    expect(filter).not.toBeNull();
    const [, prefix = '', marker = ''] = filter ?? [];
    const isRun = (line: string) =>
      line.startsWith(prefix) && line.includes(marker.replace(/\\'/g, "'"));
    expect(isRun("Event processed { eventId: 'e1', outcome: 'succeeded' }")).toBe(true);
    expect(isRun(`${DEPARTURE_DELAYED} { eventId: 'e1', errorCode: 'Throttled' }`)).toBe(false);
  });

  it('a delayed departure parses from the line the handler writes once (DepartureDelayed)', async () => {
    const lines: string[] = [];
    const runtime = world.runtimeWith({
      AUDIT_TABLE_NAME: `Audit${randomUUID().replace(/-/g, '').slice(0, 20)}`,
    });
    const handler = createQueueHandler(() => runtime, 'employeeLeaving');
    const leaver = world.newUser();
    for (const operation of ['patch', 'revoke'] as const)
      world.graph.injectFault({ operation, userKey: leaver.id, status: 429, retryAfterSeconds: 1 });
    const dueAt = ago(HOUR);
    const event = cloudEvent('employee.leaving', { user: leaver.upn, effectiveAt: dueAt });
    await handler(
      event,
      new InvocationContext({
        invocationId: randomUUID(),
        functionName: 'employeeLeaving',
        triggerMetadata: { messageId: randomUUID(), deliveryCount: 1, applicationProperties: {} },
        logHandler: (_level, ...args) => lines.push(format(...args)),
      }),
    );
    const delayed = lines.filter((l) => l.startsWith(DEPARTURE_DELAYED));
    expect(delayed).toHaveLength(1);
    const [line = ''] = delayed;
    expect(extract('eventId', line)).toBe(event.id);
    expect(extract('objectId', line)).toBe(leaver.id);
    expect(extract('dueAt', line)).toBe(dueAt);
    expect(extract('errorCode', line)).toBe('Throttled');
    // Its run line says `delayed`: the workbook's latest outcome of that event.
    const run = lines.find(
      (l) => l.startsWith('Event ') && l.includes(`eventId: '${event.id as string}'`),
    );
    expect(extract('outcome', run ?? '')).toBe('delayed');
  });
});
