/**
 * The benchmark (prints figures; asserts nothing), `npm run bench [-- options]`:
 *
 * 1. An MFA wave at Graph's write quota: the paced app and today's behaviour (no pacing), one
 *    after the other in the same run, each in its own process with its own stand-ins, printed
 *    side by side: a Graph stand-in enforcing 20 writes/s (scaled window) with Retry-After from a
 *    range and a per-request latency distribution, 16 local runners as function instances with
 *    host.json's maxConcurrentCalls, and 50 departures arriving in the middle of the wave.
 *    Then the quota Graph actually gives, with the paced app as shipped: `sharedQuota` (another app
 *    in the tenant takes half of it: 10 writes/s against the app's 20) and `quotaDrop` (the full
 *    quota halves for the middle half of the wave's writes, then comes back), smaller waves with
 *    20 departures, printed beside the full-quota wave, each against the quota Graph gave.
 * 2. Cold start on Node 22: bare node; dist/ and the deployment bundle (first start and a later
 *    one): module load, cold event (process start to verified revocation) and warm event latency;
 *    and the floors, the required SDKs alone bundled the same way (bench/floor/).
 * 3. The adversarial fault run (bench/faultRun.ts, the driver of test/integration/faultRun.test.ts)
 *    at 10,000 events: lost events and records per event.
 *
 * Options: --events 5000 --departures 50 --instances 16 --retry-after 5-30 --latency 80-400
 *          --variants shared,baseline (add `static` for design b) --static-instances 40
 *          --quota-events 2000 --quota-departures 20 --skip-quota
 *          --parallel (variants at once) --cold-runs 7 --fault-events 10000 --skip-wave
 *          --skip-cold --skip-fault --instance-processes 4 --json
 *          --trace (the shared budget beside Graph's quota, every second, on stderr)
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measureColdStart, type ColdForm, type ColdStartResult, type FloorForm } from './coldStart';
import { measureFaultRun, type FaultRunFigures } from './faultRun';
import type { Variant, WaveResult } from './waveRun';

const ROOT = join(__dirname, '..', '..');

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The paced wave against a quota other than Graph's whole one (see the header). */
type QuotaPhase = 'sharedQuota' | 'quotaDrop';

/** The full quota of the scaled window: 600 writes per 30 s (20/s, Graph's rate). */
const FULL_QUOTA_WRITES = 600;

/**
 * The phase's options for waveRun. quotaDrop: the quota halves once a quarter of the writes are
 * done at the full rate, for as long as half of them take at half the rate, so the departures
 * (sent when half the wave is done) arrive while it is low.
 */
function quotaPhaseArgs(phase: QuotaPhase, events: number, departures: number): string[] {
  const common = ['--events', String(events), '--departures', String(departures)];
  if (phase === 'sharedQuota') {
    return [...common, '--quota-writes', String(FULL_QUOTA_WRITES / 2)];
  }
  const writes = events + 2 * departures;
  const from = Math.round((writes / 4 / 20) * 10) / 10;
  const to = Math.round((from + writes / 2 / 10) * 10) / 10;
  return [...common, '--quota-writes', String(FULL_QUOTA_WRITES), '--quota-drop', `${from}-${to}`];
}

function runVariant(variant: Variant, args: string[]): Promise<WaveResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'dist/bench/waveRun.js'), '--variant', variant, ...args],
      { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = output.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        reject(new Error(`wave run ${variant} failed with exit code ${code}`));
        return;
      }
      resolve(JSON.parse(last) as WaveResult);
    });
  });
}

const LABELS: Record<Variant, string> = {
  baseline: 'today (no pacing)',
  shared: 'paced (a: as shipped)',
  nohold: 'paced (a, no wave hold)',
  static: 'paced (b: static share)',
};

function quotaLabel(result: WaveResult): string {
  const { quota } = result;
  if (quota.drop) {
    return `${quota.writesPerSecond}/s, half from ${quota.drop.fromSeconds} s to ${quota.drop.toSeconds} s`;
  }
  return `${quota.writesPerSecond}/s`;
}

function printWaves(results: Array<{ label: string; result: WaveResult }>): void {
  const first = results[0]?.result;
  if (!first) return;
  console.log(
    `\nWave: mfa.enabled events + departures in the middle, ${first.instances} instances x maxConcurrentCalls ${first.maxConcurrentCalls} in ${first.instanceProcesses} processes; the app budgets 20 writes/s`,
  );
  const rows: Array<[string, (r: WaveResult) => string]> = [
    ['events + departures', (r) => `${r.waveEvents} + ${r.departures}`],
    ["Graph's write quota", quotaLabel],
    ['ideal at that quota', (r) => `${r.idealSeconds} s (${r.graphWrites} writes)`],
    ['time to drain', (r) => `${r.drainSeconds} s${r.timedOut ? ' (time limit)' : ''}`],
    ['ratio to ideal', (r) => r.ratioToIdeal.toFixed(2)],
    [
      'Graph requests answered 429',
      (r) => `${(r.throttledShare * 100).toFixed(2)} % (${r.throttled}/${r.graphRequests})`,
    ],
    ['dead-lettered', (r) => String(r.deadLettered)],
    ['lost', (r) => String(r.lost)],
    ['unfinished at the time limit', (r) => String(r.unfinished)],
    ['revoked in Graph / events', (r) => `${r.revokedUsers}/${r.waveEvents + r.departures}`],
    [
      'departures p50 / p99 (enqueue to verified)',
      (r) => `${r.departureLatency.p50Seconds} / ${r.departureLatency.p99Seconds} s`,
    ],
    ['delayed retries scheduled', (r) => String(r.retriesScheduled)],
    ['events deferred (waited, no attempt used)', (r) => String(r.deferrals)],
    [
      'budget store calls (reads + writes, conflicts)',
      (r) =>
        r.pacer
          ? `${r.pacer.storeReads + r.pacer.storeWrites} (${r.pacer.storeConflicts} x 412/409)`
          : '-',
    ],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const column = 34;
  console.log('\n' + ''.padEnd(width) + results.map((r) => r.label.padEnd(column)).join(''));
  for (const [label, value] of rows) {
    console.log(label.padEnd(width) + results.map((r) => value(r.result).padEnd(column)).join(''));
  }
}

function printCold(cold: ColdStartResult): void {
  console.log(`\nCold start (${cold.node}, median of ${cold.runs}, interleaved):`);
  console.log(`  bare node start: ${cold.bareNodeMs} ms`);
  const rows: [string, ColdForm][] = [
    ['dist/ (tsc output, node_modules)', cold.dist],
    ['bundle, first start (cache empty)', cold.bundleFirstStart],
    ['bundle, later start (cache written)', cold.bundleCached],
  ];
  console.log(
    `  ${'form'.padEnd(38)}${'module load'.padEnd(22)}${'cold event'.padEnd(14)}warm event`,
  );
  for (const [name, form] of rows) {
    console.log(
      `  ${name.padEnd(38)}${`${form.loadMs} ms (${form.ratio} x)`.padEnd(22)}${`${form.coldEventMs} ms`.padEnd(14)}${form.warmEventMs} ms`,
    );
  }
  console.log(
    '  (cold event: process start to the first verified revocation, through the registered function)',
  );
  const floor = (name: string, form: FloorForm) =>
    console.log(`  ${name.padEnd(38)}${form.loadMs} ms (${form.ratio} x)`);
  console.log('  floors: the required SDKs alone, bundled, first start (bench/floor/):');
  floor('identity, Graph client, functions', cold.designCardFloor);
  floor('the same + the audit table client', cold.auditTableFloor);
}

function printFault(fault: FaultRunFigures): void {
  console.log(`\nFault run (${fault.events} events, ${fault.seconds} s):`);
  const rows: [string, string | number][] = [
    ['lost', fault.lost],
    ['audit records / expected (one per event)', `${fault.records} / ${fault.expectedRecords}`],
    [
      'duplicate records, left in progress',
      `${fault.duplicateRecords}, ${fault.inProgressRecords}`,
    ],
    ['succeeded, dead-lettered', `${fault.succeeded}, ${fault.deadLettered}`],
    ['Graph requests, answered 429', `${fault.graphRequests}, ${fault.throttled429}`],
    ['injected 5xx, connection resets', `${fault.injected5xx}, ${fault.connectionResets}`],
    [
      'token endpoint failures, audit outage retries',
      `${fault.tokenEndpointFailures}, ${fault.auditOutageRetries}`,
    ],
    [
      'duplicate deliveries, ids reused, invalid reusing ids',
      `${fault.duplicateDeliveries}, ${fault.collidingIds}, ${fault.invalidReusingIds}`,
    ],
    [
      'cancellation races, cancelled in time',
      `${fault.cancellationRaces}, ${fault.cancelledInTime}`,
    ],
    ['most attempts of one event', fault.maxAttempts],
    [
      'storm (every write 429): seconds, answered 429',
      `${fault.stormSeconds}, ${fault.stormThrottled}`,
    ],
    ['departures given up, MFA events given up', `${fault.departuresGivenUp}, ${fault.mfaGivenUp}`],
  ];
  for (const [name, value] of rows) console.log(`  ${name.padEnd(56)}${value}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '5000' },
      departures: { type: 'string', default: '50' },
      instances: { type: 'string', default: '16' },
      'static-instances': { type: 'string', default: '40' },
      'retry-after': { type: 'string', default: '5-30' },
      latency: { type: 'string', default: '80-400' },
      'timeout-seconds': { type: 'string', default: '900' },
      'instance-processes': { type: 'string', default: '4' },
      variants: { type: 'string', default: 'shared,baseline' },
      'cold-runs': { type: 'string', default: '7' },
      'skip-wave': { type: 'boolean', default: false },
      parallel: { type: 'boolean', default: false },
      'skip-cold': { type: 'boolean', default: false },
      'fault-events': { type: 'string', default: '10000' },
      'fault-storm-seconds': { type: 'string', default: '180' },
      'quota-events': { type: 'string', default: '2000' },
      'quota-departures': { type: 'string', default: '20' },
      'skip-quota': { type: 'boolean', default: false },
      'skip-fault': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
    },
  });
  const shape = ['--events', values.events, '--departures', values.departures];
  const runOptions = [
    '--instances',
    values.instances,
    '--static-instances',
    values['static-instances'],
    '--retry-after',
    values['retry-after'],
    '--latency',
    values.latency,
    '--timeout-seconds',
    values['timeout-seconds'],
    '--instance-processes',
    values['instance-processes'],
    // The shared budget beside Graph's quota, a line a second on stderr (bench/quotaTrace.ts).
    ...(values.trace ? ['--trace'] : []),
  ];
  const passOn = [...shape, ...runOptions];
  const variants = values.variants.split(',').map((v) => v.trim()) as Variant[];
  const started = Date.now();
  // One after the other by default: on a 2-core machine two variants at once starve each other
  // of CPU, and the paced one then measures the machine, not the pacing.
  const waves: WaveResult[] = [];
  if (!values['skip-wave']) {
    if (values.parallel)
      waves.push(...(await Promise.all(variants.map((v) => runVariant(v, passOn)))));
    else for (const variant of variants) waves.push(await runVariant(variant, passOn));
  }
  // The quota phases, each after the full-quota wave of the same run (same machine, same load).
  const phases: QuotaPhase[] = values['skip-quota'] ? [] : ['sharedQuota', 'quotaDrop'];
  const quota: Partial<Record<QuotaPhase, WaveResult>> = {};
  for (const phase of phases) {
    const args = quotaPhaseArgs(
      phase,
      Number(values['quota-events']),
      Number(values['quota-departures']),
    );
    quota[phase] = await runVariant('shared', [...runOptions, ...args]);
  }
  const printed = [
    ...waves.map((result) => ({ label: LABELS[result.variant], result })),
    ...phases.flatMap((phase) => {
      const result = quota[phase];
      return result ? [{ label: `${phase} (paced)`, result }] : [];
    }),
  ];
  if (printed.length) printWaves(printed);
  const cold = values['skip-cold']
    ? undefined
    : await measureColdStart({ runs: Number(values['cold-runs']), log });
  if (cold) printCold(cold);
  const fault = values['skip-fault']
    ? undefined
    : await measureFaultRun({
        events: Number(values['fault-events']),
        stormMs: Number(values['fault-storm-seconds']) * 1000,
        log,
      });
  if (fault) printFault(fault);
  log(`\nbench took ${((Date.now() - started) / 1000).toFixed(0)} s`);

  if (values.json) {
    const pick = (r: WaveResult | undefined) =>
      r && {
        ratioToIdeal: r.ratioToIdeal,
        throttledShare: r.throttledShare,
        deadLettered: r.deadLettered,
        lost: r.lost,
      };
    /** A quota phase: against the quota Graph gave, with its departures during the wave. */
    const pickQuota = (r: WaveResult | undefined) =>
      r && {
        ...pick(r),
        writesPerSecond: r.quota.writesPerSecond,
        ...(r.quota.drop ? { drop: r.quota.drop } : {}),
        idealSeconds: r.idealSeconds,
        drainSeconds: r.drainSeconds,
        departures: {
          p50Seconds: r.departureLatency.p50Seconds,
          p99Seconds: r.departureLatency.p99Seconds,
        },
      };
    const paced = waves.find((r) => r.variant === 'shared');
    const baseline = waves.find((r) => r.variant === 'baseline');
    console.log(
      JSON.stringify({
        wave: pick(paced) ?? null,
        baseline: pick(baseline) ?? null,
        departuresDuringWave: paced
          ? {
              p50Seconds: paced.departureLatency.p50Seconds,
              p99Seconds: paced.departureLatency.p99Seconds,
            }
          : null,
        sharedQuota: pickQuota(quota.sharedQuota) ?? null,
        quotaDrop: pickQuota(quota.quotaDrop) ?? null,
        // What ships (dist/deploy, azd deploy) on an instance's first start; dist/ and a later
        // start of the bundle beside it.
        coldLoad: cold
          ? {
              appMs: cold.bundleFirstStart.loadMs,
              bareNodeMs: cold.bareNodeMs,
              ratio: cold.bundleFirstStart.ratio,
              coldEventMs: cold.bundleFirstStart.coldEventMs,
              warmEventMs: cold.bundleFirstStart.warmEventMs,
              cachedAppMs: cold.bundleCached.loadMs,
              cachedRatio: cold.bundleCached.ratio,
              cachedColdEventMs: cold.bundleCached.coldEventMs,
              distAppMs: cold.dist.loadMs,
              distRatio: cold.dist.ratio,
              distColdEventMs: cold.dist.coldEventMs,
              designCardFloorMs: cold.designCardFloor.loadMs,
              designCardFloorRatio: cold.designCardFloor.ratio,
              auditTableFloorMs: cold.auditTableFloor.loadMs,
              auditTableFloorRatio: cold.auditTableFloor.ratio,
            }
          : null,
        faultRun: fault ?? null,
        runs: [...waves, ...Object.values(quota)],
      }),
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
