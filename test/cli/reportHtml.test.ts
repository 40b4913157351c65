/**
 * `offboard report --html` as ops run it (the built CLI) over audit records in Azurite's table and
 * lines in Azurite's append blobs, then opened in a real headless Chromium (Debian's `chromium`,
 * driven by puppeteer-core): the page renders without loading anything, and every chart and figure
 * equals the hand count below. The screenshot is kept at .local/artifacts/report.png.
 *
 * Without Chromium the browser test fails under CI=true (.ci/run installs it) and is skipped
 * elsewhere with a message.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch } from 'puppeteer-core';
import { ImmutableAuditSink, logContainer } from '../../shared/adapters/immutableAuditLog';
import type { AuditRecord } from '../../shared/core/ports';
import { DAY, fixtureRecord, HOUR, type FixtureOverrides } from '../support/auditFixtures';
import { runCli } from '../support/cli';
import { startWorld, type World } from '../support/world';

/**
 * The records' clock. Its "today" is the hour before it (HOUR ago), so in the first two hours of a
 * UTC day it is put back to 23:00 of the day before: "today" and "yesterday" stay two dates, and
 * every record is still in the past of the real clock the report's window is taken from.
 */
const NOW = ((now) => (now % DAY < 2 * HOUR ? now - (now % DAY) - HOUR : now))(Date.now());
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const dayOf = (ms: number) => ago(ms).slice(0, 10);

/** Debian's chromium (a wrapper script setting its flags), or CHROMIUM_PATH. */
const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium'].find(
  (path): path is string => path !== undefined && path !== '' && existsSync(path),
);
const IN_CI = process.env.CI === 'true';
const SCREENSHOT = join(__dirname, '..', '..', '.local', 'artifacts', 'report.png');

const record = (overrides: FixtureOverrides = {}) => fixtureRecord(NOW, overrides);

const mfa = (overrides: FixtureOverrides) =>
  record({
    eventType: 'mfa.enabled',
    route: 'mfaEnabled',
    requestedActions: ['revokeSignInSessions'],
    ...overrides,
  });

const FORGED_USER = `<img src=x onerror="document.title='pwned'">\u202e@contoso.com`;
const FORGED_ID = 'evt-</td><script>document.title="pwned"</script>';

// The departures, in the order the page lists them (first attempt, oldest first).
const D = {
  leaveDate: record({
    firstAttemptAt: ago(5 * DAY),
    effectiveAt: ago(DAY + 8000),
    lastAgoMs: DAY,
    latencySeconds: 8,
  }),
  edited: record({ lastAgoMs: 2 * DAY, latencySeconds: 400, ticket: 'HR-1' }),
  yesterday: record({ lastAgoMs: DAY, latencySeconds: 45 }),
  today: record({ latencySeconds: 12, user: 'alice@contoso.com', eventId: 'sample-leaver-alice' }),
  deadLettered: record({ outcome: 'failed', errorCode: 'Forbidden', retryable: false }),
  scheduled: record({ outcome: 'scheduled', effectiveAt: ago(-DAY) }),
  refused: record({ outcome: 'refused', errorCode: 'ProtectedAccount', retryable: false }),
  forged: record({
    outcome: 'failed',
    errorCode: '<b>Throttled</b>',
    retryable: true,
    user: FORGED_USER,
    eventId: FORGED_ID,
  }),
};
// Hand count (default window 7 days: 8 UTC days, today last).
//   today:     succeeded 2 (D.today, MFA), failed 2 (dead-lettered, forged), refused 1,
//              scheduled 1, held 1 (MFA, tripped), in-progress 1 (MFA, Deferred)
//              throttled 0 (the forged code is not Throttled), deferred 1, dead-lettered 1, trips 1
//   yesterday: succeeded 2 (D.yesterday, D.leaveDate), failed 1 (MFA, Throttled): throttled 1
//   2 days ago: succeeded 1 (D.edited)
//   time to revocation: 2, 8, 12, 45, 400 s: p50 12 s, p95 400 s, max 400 s
//     buckets: <= 10 s 2, <= 30 s 1, <= 1 min 1, <= 15 min 1
//   departures 8; final 6: matches 4, differs 1 (D.edited: ticket), missing 1 (D.deadLettered);
//   not final 2 (scheduled, forged); log lines 7 (5 departures, 2 MFA) in 1 blob (or 2 across an hour)
const OTHERS = [
  mfa({ latencySeconds: 2 }),
  mfa({
    outcome: 'held',
    guardrail: { heldAt: ago(HOUR), heldReason: 'tripped', tripped: true },
  }),
  mfa({ outcome: 'in-progress', errorCode: 'Deferred', retryable: true }),
  mfa({ outcome: 'failed', errorCode: 'Throttled', retryable: true, lastAgoMs: DAY }),
];
const LOGGED = [D.leaveDate, D.edited, D.yesterday, D.today, D.refused, OTHERS[0], OTHERS[1]];

let world: World;
let env: Record<string, string>;
let page: string;
/** The page as the CLI wrote it. */
let pageFile: string;
let stdout: string;

beforeAll(async () => {
  world = await startWorld({ AUDIT_LOG_CONTAINER: `report-${randomUUID().slice(0, 8)}` });
  env = { ...world.env, ...world.identity.envFor() };
  const config = world.runtime.config.immutableLog;
  const sink = new ImmutableAuditSink(() => logContainer(config, undefined));
  for (const logged of LOGGED) await sink.accept(logged as AuditRecord);
  for (const stored of [...Object.values(D), ...OTHERS]) {
    // The table's copy of D.edited was changed after its line was appended.
    const changed = stored === D.edited ? { ...stored, ticket: 'HR-2' } : stored;
    expect(await world.runtime.audit.create(changed)).toBeDefined();
  }
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  const file = join(dir, 'report.html');
  pageFile = file;
  const run = await runCli(['report', '--html', file], env);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  stdout = run.stdout;
  page = readFileSync(file, 'utf8');
  expect(statSync(file).mode & 0o777).toBe(0o600);
});
afterAll(async () => {
  await world.stop();
});

describe('offboard report --html', () => {
  it('says what it wrote', () => {
    expect(stdout).toMatch(
      /^Wrote \S+report\.html: 12 audit record\(s\), 8 departure\(s\), 7 immutable log line\(s\), \S+ to \S+\.\n$/,
    );
  });

  it('is one self-contained page: no script, no external reference, a policy that loads nothing', () => {
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).toMatch(
      /<meta\s+http-equiv="Content-Security-Policy"\s+content="default-src 'none'; style-src 'unsafe-inline'"/,
    );
    expect(page).not.toMatch(/<script|<img|<link|<iframe|@import|url\(/i);
    expect(page).not.toMatch(/<[a-z][^<>]*\s(?:src|href)\s*=/i);
  });

  it('escapes what the audit holds: a forged event is text, never markup', () => {
    expect(page).toContain('evt-&lt;/td&gt;&lt;script&gt;document.title=&quot;pwned&quot;');
    expect(page).toContain('&lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt;');
    expect(page).toContain('\\u202e@contoso.com');
    expect(page).not.toContain('\u202e');
    expect(page).toContain('&lt;b&gt;Throttled&lt;/b&gt;');
  });

  it('--html with --json is a usage error (64); an unwritable file is one too, before any read', async () => {
    const both = await runCli(['report', '--html', 'x.html', '--json'], env);
    expect(both.code).toBe(64);
    expect(both.stderr).toMatch(/--html <file>.*cannot be used with option '--json'/);
    const nowhere = await runCli(['report', '--html', '/nonexistent/dir/report.html'], {
      ...env,
      AUDIT_TABLE_CONNECTION_STRING: 'not a connection string',
    });
    expect(nowhere.code).toBe(64);
    expect(nowhere.stderr).toMatch(/Cannot write --html \/nonexistent\/dir\/report\.html/);
  });
});

/** What the browser shows, read from the rendered page. */
interface Rendered {
  title: string;
  figures: Record<string, string>;
  bars: { chart: string; key: string; count: number; height: number; width: number }[];
  rows: { event: string; cells: string[] }[];
  markupFromAudit: number;
  textOfForgedRow: string;
}

/**
 * Runs in the page (a string: this project's TypeScript has no DOM types). Reads the figures, every
 * bar with its data-* figures and its drawn size, and the departures table.
 */
const READ_PAGE = `(() => {
  const text = (e) => (e?.innerText ?? e?.textContent ?? '').replace(/\\s+/g, ' ').trim();
  const figures = {};
  for (const f of document.querySelectorAll('[data-figure]'))
    figures[f.getAttribute('data-figure')] = text(f.querySelector('b'));
  const bars = [...document.querySelectorAll('rect.bar')].map((r) => {
    const box = r.getBBox();
    const key = ['data-day', 'data-outcome', 'data-bucket']
      .map((name) => r.getAttribute(name))
      .filter((v) => v !== null)
      .join(' ');
    const count = Number(r.getAttribute('data-count'));
    return { chart: r.getAttribute('data-chart'), key, count, height: box.height, width: box.width };
  });
  const trs = [...document.querySelectorAll('table.departures tbody tr')];
  const rows = trs.map((tr) => ({
    event: tr.getAttribute('data-event'),
    cells: [...tr.querySelectorAll('td')].map(text),
  }));
  const forged = trs.find((tr) => tr.getAttribute('data-event').includes('script'));
  return {
    title: document.title,
    figures,
    bars,
    rows,
    markupFromAudit: document.querySelectorAll('script, img, b b, td td').length,
    textOfForgedRow: text(forged),
  };
})()`;

const browserTest = CHROMIUM !== undefined || IN_CI ? it : it.skip;
if (CHROMIUM === undefined && !IN_CI)
  console.warn(
    'Skipping the headless-browser test of `offboard report --html`: no Chromium at /usr/bin/chromium ' +
      '(apt-get install chromium, or set CHROMIUM_PATH). Under CI=true this fails instead.',
  );

describe('the page in headless Chromium', () => {
  browserTest(
    'renders, loads nothing, and its charts and figures equal the audit fixtures',
    async () => {
      if (CHROMIUM === undefined)
        throw new Error(
          'Chromium is not installed (CI=true): .ci/run installs Debian\'s "chromium"; set CHROMIUM_PATH if it lives elsewhere.',
        );
      const browser = await launch({
        executablePath: CHROMIUM,
        headless: true,
        // As root (CI) Chromium refuses its sandbox; the page is our own file with no script.
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      });
      try {
        const tab = await browser.newPage();
        const requests: string[] = [];
        const problems: string[] = [];
        await tab.setRequestInterception(true);
        tab.on('request', (request) => {
          requests.push(request.url());
          void (request.url().startsWith('file:') ? request.continue() : request.abort());
        });
        tab.on('console', (message) =>
          problems.push(`console ${message.type()}: ${message.text()}`),
        );
        tab.on('pageerror', (error) => problems.push(`page error: ${String(error)}`));
        await tab.setViewport({ width: 1280, height: 900 });
        const url = pathToFileURL(pageFile).href;
        await tab.goto(url, { waitUntil: 'load' });

        const rendered = (await tab.evaluate(READ_PAGE)) as Rendered;

        mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
        await tab.screenshot({ path: SCREENSHOT, fullPage: true });

        expect(problems).toEqual([]);
        expect(requests).toEqual([url]);
        expect(rendered.title).toMatch(/^Offboarding evidence \d{4}-\d\d-\d\d \S+Z to /);
        expect(rendered.figures).toEqual({
          records: '12',
          succeeded: '5',
          departures: '8',
          p50: '12 s',
          p95: '6.7 min',
          max: '6.7 min',
          deadLettered: '1',
          guardrailTrips: '1',
          logMatches: '4 of 6',
        });

        const counts = (chart: string) =>
          Object.fromEntries(
            rendered.bars.filter((b) => b.chart === chart).map((b) => [b.key, b.count]),
          );
        const [today, yesterday, twoDaysAgo] = [dayOf(HOUR), dayOf(DAY), dayOf(2 * DAY)];
        expect(counts('outcomes')).toEqual({
          [`${today} succeeded`]: 2,
          [`${today} failed`]: 2,
          [`${today} refused`]: 1,
          [`${today} held`]: 1,
          [`${today} scheduled`]: 1,
          [`${today} in-progress`]: 1,
          [`${yesterday} succeeded`]: 2,
          [`${yesterday} failed`]: 1,
          [`${twoDaysAgo} succeeded`]: 1,
        });
        expect(counts('latency')).toEqual({
          '≤ 10 s': 2,
          '≤ 30 s': 1,
          '≤ 1 min': 1,
          '≤ 15 min': 1,
        });
        expect(counts('throttled')).toEqual({ [yesterday]: 1 });
        expect(counts('deferred')).toEqual({ [today]: 1 });
        expect(counts('deadLettered')).toEqual({ [today]: 1 });
        expect(counts('guardrailTrips')).toEqual({ [today]: 1 });
        // Drawn to scale: within a chart, every bar's height per count is the same, and visible.
        for (const chart of new Set(rendered.bars.map((b) => b.chart))) {
          const bars = rendered.bars.filter((b) => b.chart === chart);
          const unit = (bars[0]?.height ?? 0) / (bars[0]?.count ?? 1);
          expect(unit).toBeGreaterThan(5);
          for (const b of bars) {
            expect(b.width).toBeGreaterThan(2);
            expect(b.height / b.count).toBeCloseTo(unit, 0);
          }
        }

        // Oldest first attempt first; the same time in event id order.
        const listed = Object.values(D).sort(
          (a, b) =>
            a.firstAttemptAt.localeCompare(b.firstAttemptAt) || a.eventId.localeCompare(b.eventId),
        );
        expect(rendered.rows.map((r) => r.event)).toEqual(listed.map((r) => r.eventId));
        const row = (r: AuditRecord) =>
          rendered.rows.find((x) => x.event === r.eventId)?.cells ?? [];
        const when = (iso: string) => iso.replace('T', ' ').slice(0, 19) + 'Z';
        const alice = row(D.today);
        expect(alice.slice(0, 3)).toEqual([
          'sample-leaver-alice',
          'alice@contoso.com',
          'succeeded',
        ]);
        expect(alice[3]).toBe(when(D.today.eventTime ?? ''));
        expect(alice[4]).toBe(when(D.today.firstAttemptAt));
        expect(alice[6]).toBe(when(D.today.verification?.signInSessionsValidFrom ?? ''));
        expect(alice[7]).toBe('12 s');
        expect(alice[8]).toBe(when(D.today.accessCutoff?.caeAppsBy ?? ''));
        expect(alice[9]).toBe(when(D.today.accessCutoff?.otherAppsBy ?? ''));
        expect(alice[10]).toMatch(
          /^matches \d{4}\/\d\d\/\d\d\/\d\d\/\S+\.jsonl#\d+ appended \d{4}-/,
        );
        expect(row(D.leaveDate)[5]).toBe(when(D.leaveDate.effectiveAt ?? ''));
        expect(row(D.leaveDate)[7]).toBe('8 s');
        expect(row(D.edited)[10]).toMatch(/^differs .* differs in ticket$/);
        expect(row(D.deadLettered)[10]).toBe('missing');
        expect(row(D.scheduled)[10]).toBe('not final');
        expect(row(D.scheduled)[6]).toBe('');

        expect(rendered.markupFromAudit).toBe(0);
        expect(rendered.title).not.toContain('pwned');
        expect(rendered.textOfForgedRow).toContain(`<img src=x onerror="document.title='pwned'">`);
        expect(rendered.textOfForgedRow).toContain('<b>Throttled</b>');
      } finally {
        await browser.close();
      }
    },
    60_000,
  );
});
