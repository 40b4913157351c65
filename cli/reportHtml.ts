import type { WaveEffect } from './waveEffect';
import type { Outcome } from '../shared/core/ports';
import { escapeUnsafe } from './output';
import {
  OUTCOME_ORDER,
  type DayFigures,
  type DepartureRow,
  type Evidence,
  type LatencyBucket,
} from './reportEvidence';

/**
 * `offboard report --markup`: one self-contained page. No script, no font, no image or style from
 * anywhere: the charts are SVG drawn here, and the page's Content-Security-Policy forbids loading
 * anything, so a value that slipped past escaping still could not run or call out.
 *
 * Every value from the audit (user, event id, error code, blob name: all can come from a forged
 * event) goes through the `markup` tag below, which escapes each interpolation unless it is markup
 * this file built.
 */

/** Markup built here; anything else interpolated into `markup` is text and gets escaped. */
class Markup {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text for an element or a quoted attribute: markup characters as entities, controls and bidi as \uXXXX. */
export function escapeHtml(text: string): string {
  return escapeUnsafe(text).replace(/[&<>"']/g, (char) => ENTITIES[char] as string);
}

type Part = Markup | string | number | undefined | readonly Part[];

function render(part: Part): string {
  if (part === undefined) return '';
  if (part instanceof Markup) return part.value;
  if (Array.isArray(part)) return (part as readonly Part[]).map(render).join('');
  return escapeHtml(String(part));
}

/** A template whose interpolations are escaped (arrays joined, Markup kept as it is). */
function markup(strings: TemplateStringsArray, ...parts: Part[]): Markup {
  return new Markup(strings.reduce((out, s, i) => out + render(parts[i - 1]) + s));
}

export const OUTCOME_COLOURS: Record<Outcome, string> = {
  succeeded: '#2e7d32',
  failed: '#c62828',
  refused: '#ef6c00',
  held: '#6a1b9a',
  discarded: '#616161',
  superseded: '#8d6e63',
  delayed: '#d84315',
  scheduled: '#1565c0',
  cancelled: '#90a4ae',
  'dry-run': '#00838f',
  'in-progress': '#f9a825',
};

const SERIES_COLOURS = {
  throttled: '#ef6c00',
  deferred: '#1565c0',
  deadLettered: '#c62828',
  guardrailTrips: '#6a1b9a',
} as const;

const CHART = { width: 760, height: 220, left: 40, right: 10, top: 12, bottom: 34 } as const;
const plotWidth = CHART.width - CHART.left - CHART.right;
const plotHeight = CHART.height - CHART.top - CHART.bottom;

/** A round top for the y axis (1, 2, 5 x 10^n) at or above the largest value. */
function axisTop(max: number): number {
  if (max <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(max));
  const step = [1, 2, 5, 10].find((m) => m * magnitude >= max) ?? 10;
  return step * magnitude;
}

const round = (n: number) => Math.round(n * 10) / 10;
const y = (value: number, top: number) => round(CHART.top + plotHeight * (1 - value / top));

/** Axis, grid lines and the x labels (at most about 12 of them); the bars come from `bars`. */
function chart(label: string, xLabels: string[], top: number, bars: Markup[]): Markup {
  const ticks = [0, top / 2, top];
  const slot = plotWidth / Math.max(1, xLabels.length);
  const every = Math.max(1, Math.ceil(xLabels.length / 12));
  return markup`<svg
    class="chart"
    role="img"
    aria-label="${label}"
    viewBox="0 0 ${CHART.width} ${CHART.height}"
    width="${CHART.width}"
    height="${CHART.height}"
  >
    ${ticks.map(
      (t) =>
        markup`<line
            class="grid"
            x1="${CHART.left}"
            x2="${CHART.width - CHART.right}"
            y1="${y(t, top)}"
            y2="${y(t, top)}"
          /><text class="tick" x="${CHART.left - 6}" y="${y(t, top) + 4}" text-anchor="end"
            >${round(t)}</text
          > `,
    )}${xLabels.map((text, i) =>
      i % every === 0
        ? markup`<text
            class="xlabel"
            x="${round(CHART.left + slot * (i + 0.5))}"
            y="${CHART.height - CHART.bottom + 16}"
            text-anchor="middle"
            >${text}</text
          > `
        : undefined,
    )}${bars}
  </svg>`;
}

/** One bar: data-* attributes carry the figure so a reader (or a test) can check it. */
function bar(
  x: number,
  width: number,
  from: number,
  to: number,
  top: number,
  colour: string,
  data: Record<string, string | number>,
  title: string,
): Markup {
  const attributes = Object.entries(data).map(([k, v]) => markup` data-${k}="${v}"`);
  return markup`<rect
    class="bar"
    x="${round(x)}"
    y="${y(to, top)}"
    width="${round(width)}"
    height="${round(y(from, top) - y(to, top))}"
    fill="${colour}"
    ${attributes}
    ><title>${title}</title></rect
  > `;
}

const shortDay = (day: string) => day.slice(5);

function outcomesPerDay(days: DayFigures[]): Markup {
  const totals = days.map((d) => Object.values(d.byOutcome).reduce((a, b) => a + b, 0));
  const top = axisTop(Math.max(0, ...totals));
  const slot = plotWidth / Math.max(1, days.length);
  // An outcome this version does not know (a newer writer, an edited table) is drawn too, in grey.
  const order = [
    ...new Set<string>([...OUTCOME_ORDER, ...days.flatMap((d) => Object.keys(d.byOutcome))]),
  ] as Outcome[];
  const colour = (outcome: Outcome) => OUTCOME_COLOURS[outcome] ?? '#9e9e9e';
  const bars = days.flatMap((d, i) => {
    let stacked = 0;
    return order.flatMap((outcome) => {
      const count = d.byOutcome[outcome] ?? 0;
      if (count === 0) return [];
      const from = stacked;
      stacked += count;
      return [
        bar(
          CHART.left + slot * (i + 0.15),
          slot * 0.7,
          from,
          stacked,
          top,
          colour(outcome),
          { chart: 'outcomes', day: d.day, outcome, count },
          `${d.day}: ${count} ${outcome}`,
        ),
      ];
    });
  });
  const present = OUTCOME_ORDER.filter((o) => days.some((d) => (d.byOutcome[o] ?? 0) > 0));
  return markup`${chart(
    'Outcomes per day',
    days.map((d) => shortDay(d.day)),
    top,
    bars,
  )}
  ${legend(present.map((o) => [o, OUTCOME_COLOURS[o]]))}`;
}

function legend(entries: [string, string][]): Markup {
  if (entries.length === 0) return markup`<p class="legend">No records in the window.</p>`;
  return markup`<p class="legend">
    ${entries.map(
      ([name, colour]) => markup`<span><i style="background:${colour}"></i>${name}</span> `,
    )}
  </p>`;
}

function latencyChart(buckets: LatencyBucket[]): Markup {
  const top = axisTop(Math.max(0, ...buckets.map((b) => b.count)));
  const slot = plotWidth / buckets.length;
  const bars = buckets.flatMap((b, i) =>
    b.count === 0
      ? []
      : [
          bar(
            CHART.left + slot * (i + 0.15),
            slot * 0.7,
            0,
            b.count,
            top,
            OUTCOME_COLOURS.succeeded,
            { chart: 'latency', bucket: b.label, count: b.count },
            `${b.label}: ${b.count} revocation(s)`,
          ),
        ],
  );
  return chart(
    'Time to verified revocation',
    buckets.map((b) => b.label),
    top,
    bars,
  );
}

/** Side-by-side bars per day, one per series. */
function seriesPerDay(
  label: string,
  days: DayFigures[],
  series: (keyof typeof SERIES_COLOURS)[],
  names: Record<string, string>,
): Markup {
  const top = axisTop(Math.max(0, ...days.flatMap((d) => series.map((s) => d[s]))));
  const slot = plotWidth / Math.max(1, days.length);
  const width = (slot * 0.8) / series.length;
  const bars = days.flatMap((d, i) =>
    series.flatMap((s, j) =>
      d[s] === 0
        ? []
        : [
            bar(
              CHART.left + slot * (i + 0.1) + width * j,
              width,
              0,
              d[s],
              top,
              SERIES_COLOURS[s],
              { chart: s, day: d.day, count: d[s] },
              `${d.day}: ${d[s]} ${names[s] ?? s}`,
            ),
          ],
    ),
  );
  return markup`${chart(
    label,
    days.map((d) => shortDay(d.day)),
    top,
    bars,
  )}
  ${legend(series.map((s) => [names[s] ?? s, SERIES_COLOURS[s]]))}`;
}

/** 2026-12-05T13:02:11.123Z as 2026-12-05 13:02:11Z; what is not a time stays as given. */
function when(iso: string | undefined): string {
  if (iso === undefined) return '';
  const at = Date.parse(iso);
  return Number.isNaN(at) ? iso : new Date(at).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}

/** A time cell that breaks between the date and the time, never inside either. */
function timeCell(iso: string | undefined): Markup {
  const [date, time] = when(iso).split(' ');
  return markup`<td class="time"><span>${date}</span> <span>${time}</span></td>`;
}

function duration(seconds: number | undefined): string {
  if (seconds === undefined) return '';
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${round(seconds / 60)} min`;
  return `${round(seconds / 3600)} h`;
}

function logCell(row: DepartureRow): Markup {
  const where =
    row.log === undefined
      ? undefined
      : markup`<br /><span class="mono">${row.log.blob}#${row.log.line}</span><br />appended
          ${when(row.log.appendedAt)}`;
  const differs =
    row.log !== undefined && row.log.differs.length > 0
      ? markup`<br />differs in ${row.log.differs.join(', ')}`
      : undefined;
  return markup`<td class="log ${row.logStatus.replace(' ', '-')}">
    <b>${row.logStatus}</b>${where}${differs}
  </td>`;
}

function departuresTable(rows: DepartureRow[]): Markup {
  if (rows.length === 0) return markup`<p>No departures in the window.</p>`;
  // The column only when the sign-in watch was on for some departure: otherwise the page is as before.
  const watched = rows.some((r) => r.signInWatch !== undefined);
  return markup`<table class="departures">
    <thead>
      <tr>
        <th>event id</th>
        <th>user</th>
        <th>outcome</th>
        <th>event time (producer)</th>
        <th>taken by the app</th>
        <th>leave date</th>
        <th>revoked (verified)</th>
        <th>to revocation</th>
        <th>CAE apps cut off by</th>
        <th>other apps by</th>
        <th>immutable log</th>
        ${watched ? markup`<th>sign-in watch</th>` : undefined}
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (r) =>
          markup`<tr data-event="${r.eventId}">
            <td class="mono event">${r.eventId}</td>
            <td class="user">${r.user}</td>
            <td>
              <span class="pill" style="background:${OUTCOME_COLOURS[r.outcome] ?? '#9e9e9e'}"
                >${r.outcome}</span
              >${r.errorCode === undefined ? undefined : markup`<br />${r.errorCode}`}
            </td>
            ${timeCell(r.eventTime)}
            ${timeCell(r.firstAttemptAt)}
            ${timeCell(r.leaveDate)}
            ${timeCell(r.revokedAt)}
            <td class="num">${duration(r.secondsToRevocation)}</td>
            ${timeCell(r.caeAppsBy)}
            ${timeCell(r.otherAppsBy)}
            ${logCell(r)}
            ${watched ? markup`<td class="watch">${r.signInWatch ?? ''}</td>` : undefined}
          </tr> `,
      )}
    </tbody>
  </table>`;
}

function figure(label: string, value: string | number, name: string): Markup {
  return markup`<div class="figure" data-figure="${name}"><b>${value}</b><span>${label}</span></div>`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1b1b1b;margin:24px auto;max-width:1180px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
p.meta{color:#555;margin:0 0 12px}.note{color:#555;font-size:13px;max-width:860px}
.figures{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.figure{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px;background:#fafafa}
.figure b{display:block;font-size:20px}.figure span{color:#555;font-size:12px}
svg.chart{display:block;width:100%;max-width:760px;height:auto}svg .grid{stroke:#e3e3e3}svg text{font-size:11px;fill:#555}
.legend span{margin-right:12px;font-size:12px;white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
table{border-collapse:collapse;font-size:12px;width:100%}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.time span{white-space:nowrap}td.user{overflow-wrap:anywhere;min-width:11em;max-width:18em}td.event{min-width:8em}td.log{min-width:15em}td.num{text-align:right;white-space:nowrap}.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}
.pill{color:#fff;border-radius:3px;padding:0 5px}
td.log.matches b{color:#2e7d32}td.log.differs b,td.log.missing b{color:#c62828}td.log.not-final b{color:#555}
`;

/** The whole page for one window. */
/** `--wave ID`: the MFA wave's effect, from the sign-in log (waveEffect.ts). */
function waveSection(wave: WaveEffect | undefined): Markup | undefined {
  if (wave === undefined) return undefined;
  const without = wave.people['without-mfa'];
  return markup`<h2>MFA wave ${wave.wave}</h2>
    <p class="note">
      Of the wave's ${wave.events} mfa.enabled events in the window, ${wave.revoked} people had their
      sessions revoked (verified). Their sign-ins since their revocation, from the Entra sign-in log
      up to ${when(wave.until)} (it is a few minutes late).
    </p>
    <div class="figures">
      ${figure('signed in with MFA', wave.withMfa, 'waveWithMfa')}
      ${figure('not signed in yet', wave.notSignedIn, 'waveNotSignedIn')}
      ${figure('signed in without MFA', wave.withoutMfa, 'waveWithoutMfa')}
      ${figure('MFA not stated by the log', wave.mfaNotStated, 'waveMfaNotStated')}
      ${figure('sign-in log unavailable', wave.unavailable, 'waveUnavailable')}
    </div>
    ${
      wave.unavailableReason === undefined
        ? undefined
        : markup`<p class="note">Unavailable because: ${wave.unavailableReason}</p>`
    }
    ${
      wave.mfaNotStatedReason === undefined
        ? undefined
        : markup`<p class="note">MFA not stated because ${wave.mfaNotStatedReason}.</p>`
    }
    ${
      without.length === 0
        ? undefined
        : markup`<table class="wave">
          <thead>
            <tr>
              <th>signed in without MFA: object id</th>
              <th>user principal name</th>
            </tr>
          </thead>
          <tbody>
            ${without.map(
              (p) =>
                markup`<tr>
                  <td class="mono">${p.objectId}</td>
                  <td>${p.userPrincipalName ?? ''}</td>
                </tr>`,
            )}
          </tbody>
        </table>`
    }`;
}

export function renderEvidenceHtml(
  evidence: Evidence,
  generatedAt: Date,
  wave?: WaveEffect,
): string {
  const { report, days, departures, guardrailTrips, log } = evidence;
  const { latency } = report;
  const seconds = (value: number | undefined) => (value === undefined ? '–' : duration(value));
  const deadLettered = days.reduce((sum, d) => sum + d.deadLettered, 0);
  const inLog = departures.filter((d) => d.logStatus === 'matches').length;
  const final = departures.filter((d) => d.logStatus !== 'not final').length;
  const page = markup`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta
          http-equiv="Content-Security-Policy"
          content="default-src 'none'; style-src 'unsafe-inline'"
        />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Offboarding evidence ${when(report.since)} to ${when(report.until)}</title>
        <style>
          ${new Markup(STYLE)}
        </style>
      </head>
      <body>
        <h1>Offboarding evidence report</h1>
        <p class="meta">
          Audit records last attempted from <b>${when(report.since)}</b> to
          <b>${when(report.until)}</b>; generated ${when(generatedAt.toISOString())}. Source: the
          audit table (${report.records} records) and the immutable audit log (${log.lines} lines in
          ${log.blobs} blobs${log.unreadable > 0 ? `, ${log.unreadable} unreadable` : ''}).
        </p>
        <div class="figures">
          ${figure('audit records', report.records, 'records')}
          ${figure('succeeded', report.byOutcome.succeeded ?? 0, 'succeeded')}
          ${figure('departures', departures.length, 'departures')}
          ${figure('p50 to verified revocation', seconds(latency.p50Seconds), 'p50')}
          ${figure('p95 to verified revocation', seconds(latency.p95Seconds), 'p95')}
          ${figure('max to verified revocation', seconds(latency.maxSeconds), 'max')}
          ${figure('dead-lettered', deadLettered, 'deadLettered')}
          ${figure('guardrail trips', report.guardrail.trips, 'guardrailTrips')}
          ${figure('final departures matching the log', `${inLog} of ${final}`, 'logMatches')}
        </div>
        <h2>Outcomes per day</h2>
        <p class="note">Each event counted once, on the UTC day of its last attempt.</p>
        ${outcomesPerDay(days)}
        <h2>Time to verified revocation</h2>
        <p class="note">
          From when the revocation was due (when the app first took the event, or the leave date if
          later) to the revocation time read back from Microsoft Graph (<span class="mono"
            >signInSessionsValidFromDateTime</span
          >). Not from the event's own time, which is the producer's word. ${latency.count} events
          measured; p50 ${seconds(latency.p50Seconds)}, p95 ${seconds(latency.p95Seconds)}, max
          ${seconds(latency.maxSeconds)}.
        </p>
        ${latencyChart(evidence.latencyBuckets)}
        <div class="grid2">
          <div>
            <h2>Throttling and dead letters</h2>
            <p class="note">
              Events whose last attempt was answered 429 (throttled) or waited for the write budget
              (deferred), and events that failed permanently and went to the dead-letter queue.
            </p>
            ${seriesPerDay('Throttling and dead letters per day', days, ['throttled', 'deferred', 'deadLettered'], { throttled: 'throttled (429)', deferred: 'deferred (budget)', deadLettered: 'dead-lettered' })}
          </div>
          <div>
            <h2>Guardrail trips</h2>
            <p class="note">
              Trips: ${report.guardrail.trips}. Held events: ${report.guardrail.held} still held, ${report.guardrail.released} released and ${report.guardrail.discarded} discarded by an operator.</p>
            ${seriesPerDay('Guardrail trips per day', days, ['guardrailTrips'], { guardrailTrips: 'trips' })}
            ${
              guardrailTrips.length === 0
                ? undefined
                : markup`<table class="trips">
                    <thead>
                      <tr>
                        <th>held at</th>
                        <th>route</th>
                        <th>event id</th>
                        <th>user</th>
                      </tr>
                    </thead>
                    <tbody>
                      ${guardrailTrips.map(
                        (t) =>
                          markup`<tr>
                            ${timeCell(t.heldAt)}
                            <td>${t.route}</td>
                            <td class="mono">${t.eventId}</td>
                            <td>${t.user}</td>
                          </tr>`,
                      )}
                    </tbody>
                  </table>`
            }
          </div>
        </div>
        ${waveSection(wave)}
        <h2>Departures</h2>
        <p class="note">
          Every employee.leaving event in the window: its times, the verified revocation, when
          access ends (apps that honour Continuous Access Evaluation within 15 minutes, other apps
          when their access token expires), and its entry in the immutable log (blob#line), compared
          field by field with the audit table.
        </p>
        ${departuresTable(departures)}
      </body>
    </html> `;
  return page.value;
}
