/**
 * One variant of the wave benchmark, in its own process with its own stand-ins (bench/index.ts
 * runs the variants side by side and prints them). Prints progress on stderr and one JSON object
 * on the last line of stdout.
 *
 *   node dev/with-dev-ca.mjs node dist/bench/waveRun.js --variant shared [--events 5000 ...]
 *
 * Variants: `baseline` (today: no pacing), `shared` (design a, what ships: createRuntime with the
 * PACING_* defaults, one budget in Table Storage), `static` (design b: each instance paces to 1/N
 * of the budget in memory).
 *
 * The quota Graph gives: `--quota-writes` per `--quota-window-ms` (600 per 30 s: 20 writes/s, what
 * the app budgets; 300: another app takes half), and `--quota-drop FROM-TO` halves it from FROM to
 * TO seconds after the wave starts, the writes used so far staying used.
 */
import { OUTCOME_TOPIC } from './outcomeTopic';
import { ServiceBusClient, type ServiceBusMessage } from '@azure/service-bus';
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startAzuriteTable } from '../dev/azurite';
import { DEFAULT_SESSIONS_VALID_FROM, startGraphStandIn } from '../dev/graph-standin/index';
import { startManagedIdentityStandIn } from '../dev/identity-standin/index';
import { startServiceBusStandIn } from '../dev/servicebus-standin/index';
import { GraphPermissions } from '../shared/adapters/graphPermissions';
import type { PacerStats } from '../shared/pacing/index';
import { traceQuota } from './quotaTrace';
import { percentile, round } from './stats';
import {
  startInstances,
  sumPacerStats,
  type FromInstances,
  type InstanceSignal,
  type InstancesOptions,
  type ToInstances,
  type Variant,
} from './waveInstances';

export type { Variant };

export interface WaveResult {
  variant: Variant;
  instances: number;
  /** Processes the instances ran in (besides the one with the stand-ins); 0: that one. */
  instanceProcesses: number;
  maxConcurrentCalls: number;
  waveEvents: number;
  departures: number;
  graphWrites: number;
  /** Graph's quota: writes per second, and when it was halved (seconds after the start). */
  quota: { writesPerSecond: number; drop?: { fromSeconds: number; toSeconds: number } };
  /** Time the writes take at the quota Graph gave (its initial burst not counted). */
  idealSeconds: number;
  drainSeconds: number;
  ratioToIdeal: number;
  graphRequests: number;
  throttled: number;
  throttledShare: number;
  succeeded: number;
  deadLettered: number;
  /** Still in a queue (scheduled or active) when the run stopped at its time limit. */
  unfinished: number;
  lost: number;
  /** Users whose sessions the Graph stand-in shows revoked (independent of the app's logs). */
  revokedUsers: number;
  retriesScheduled: number;
  deferrals: number;
  departureLatency: { p50Seconds: number; p99Seconds: number; maxSeconds: number };
  /** Enqueue to the handler's first start, and time spent in reserve() per write (ms). */
  departureBreakdown: {
    queueP50Seconds: number;
    queueP99Seconds: number;
    reserveP50Ms: number;
    reserveP99Ms: number;
  };
  pacer?: PacerStats;
  /** The instances' commonest log lines other than successes (by first words and reason). */
  said: Array<{ line: string; count: number }>;
  timedOut: boolean;
}

const ROOT = join(__dirname, '..', '..');

function hostConcurrency(): number {
  const host = JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')) as {
    extensions?: { serviceBus?: { maxConcurrentCalls?: number } };
  };
  return host.extensions?.serviceBus?.maxConcurrentCalls ?? 16;
}

/** Seconds `writes` take at `rate` writes/s, halved between drop.fromSeconds and drop.toSeconds. */
export function idealUnderQuota(
  writes: number,
  rate: number,
  drop?: { fromSeconds: number; toSeconds: number },
): number {
  if (!drop) return writes / rate;
  const before = Math.min(writes, drop.fromSeconds * rate);
  if (before >= writes) return writes / rate;
  const during = Math.min(writes - before, ((drop.toSeconds - drop.fromSeconds) * rate) / 2);
  const after = writes - before - during;
  return drop.fromSeconds + during / (rate / 2) + after / rate;
}

function range(text: string): { min: number; max: number } {
  const [min, max] = text.split('-').map(Number);
  if (min === undefined || !Number.isFinite(min)) throw new Error(`bad range ${text}`);
  return { min, max: max !== undefined && Number.isFinite(max) ? max : min };
}

interface InstanceHost {
  stop(): Promise<PacerStats | undefined>;
}

/**
 * Starts `instances` instances: in this process (processes <= 1), or spread over child processes
 * (bench/waveInstances.js, with this process's environment: the dev CA and the managed identity
 * endpoint) whose signals arrive over IPC.
 */
async function startInstanceHosts(
  instances: number,
  processes: number,
  options: Omit<InstancesOptions, 'count'>,
  onSignal: (signal: InstanceSignal) => void,
): Promise<InstanceHost[]> {
  if (processes <= 1) return [startInstances({ ...options, count: instances }, onSignal)];
  const hosts: InstanceHost[] = [];
  for (let p = 0; p < processes; p++) {
    const count = Math.floor(instances / processes) + (p < instances % processes ? 1 : 0);
    const child = fork(join(__dirname, 'waveInstances.js'), [], {
      env: process.env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let stopped: ((pacer: PacerStats | undefined) => void) | undefined;
    child.on('message', (message: FromInstances) => {
      if (message.kind === 'signals') message.signals.forEach(onSignal);
      else stopped?.(message.pacer);
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const start: ToInstances = { kind: 'start', options: { ...options, count } };
    child.send(start);
    hosts.push({
      stop: async () => {
        const pacer = new Promise<PacerStats | undefined>((resolve) => {
          stopped = resolve;
          void exited.then(() => resolve(undefined));
        });
        const stop: ToInstances = { kind: 'stop' };
        child.send(stop);
        const result = await pacer;
        await exited;
        return result;
      },
    });
  }
  return hosts;
}

export async function runWave(options: {
  variant: Variant;
  events: number;
  departures: number;
  instances: number;
  staticInstances: number;
  retryAfter: { min: number; max: number };
  latency: { p50Ms: number; p99Ms: number };
  quotaWrites: number;
  quotaWindowMs: number;
  /** Halves Graph's quota between these two times (seconds after the wave starts). */
  quotaDrop?: { fromSeconds: number; toSeconds: number };
  timeoutSeconds: number;
  /** Logs the shared budget beside Graph's quota every second (bench/quotaTrace.ts). */
  trace?: boolean;
  /** Child processes the instances run in; 0 or 1: all in this process (with the stand-ins). */
  instanceProcesses: number;
  log: (line: string) => void;
}): Promise<WaveResult> {
  const { variant, events, departures, instances, log } = options;
  const maxConcurrentCalls = hostConcurrency();
  const azurite = await startAzuriteTable();
  const queues = { employeeLeaving: 'employee-leaving', mfaEnabled: 'mfa-enabled' };
  // As infra configures them: 5 deliveries, 60 s lock, duplicate detection 10 min.
  const serviceBus = await startServiceBusStandIn({
    queues: Object.values(queues).map((name) => ({
      name,
      maxDeliveryCount: 5,
      lockDurationMs: 60_000,
      duplicateDetectionWindowMs: 600_000,
    })),
    // Every final record is published to the outcome topic (OUTCOME_TOPIC, its default name).
    topics: [{ name: OUTCOME_TOPIC, duplicateDetectionWindowMs: 600_000, subscriptions: [] }],
  });
  const graphPort = await freePort();
  const graph = await startGraphStandIn({
    port: graphPort,
    audience: `https://127.0.0.1:${graphPort}`,
    users: [],
    latency: options.latency,
  });
  const quota = {
    writesPerWindow: options.quotaWrites,
    windowMs: options.quotaWindowMs,
    retryAfterSeconds: options.retryAfter,
  };
  graph.throttle(quota);
  const identity = await startManagedIdentityStandIn({ roles: Object.values(GraphPermissions) });
  Object.assign(process.env, identity.envFor());
  const env = {
    GRAPH_ENDPOINT: graph.url,
    AUDIT_TABLE_CONNECTION_STRING: azurite.connectionString,
    ServiceBusConnection: serviceBus.connectionString,
    PROTECTED_USERS: 'breakglass@contoso.com',
    // As shipped, except the blast-radius guardrail's thresholds, set above this load: the wave
    // is not sent as an approved wave here, and a tripped guardrail would hold it (by design).
    GUARDRAIL_MFA_PER_WINDOW: String(Math.max(2000, events * 2)),
    GUARDRAIL_DEPARTURES_PER_WINDOW: String(Math.max(50, departures * 2)),
  };
  const userId = (prefix: string, i: number) =>
    `${prefix}-0000-4000-8000-${String(i).padStart(12, '0')}`;
  const waveUsers = Array.from({ length: events }, (_, i) =>
    graph.addUser({ id: userId('be000000', i), userPrincipalName: `wave${i}@contoso.com` }),
  );
  const leavers = Array.from({ length: departures }, (_, i) =>
    graph.addUser({ id: userId('1ea00000', i), userPrincipalName: `leaver${i}@contoso.com` }),
  );

  const succeededAt = new Map<string, number>();
  const otherLogs = new Map<string, number>();
  const topLogs = () =>
    [...otherLogs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([kind, count]) => `\n    ${count} x ${kind}`)
      .join('');
  let retriesScheduled = 0;
  let deferrals = 0;
  /** Where a departure's time goes: waiting in the queue, and reserving budget in the handler. */
  const departureReserveMs: number[] = [];
  const handlerStartedAt = new Map<string, number>();
  const onSignal = (signal: InstanceSignal): void => {
    switch (signal.kind) {
      case 'verified':
        if (!succeededAt.has(signal.eventId)) succeededAt.set(signal.eventId, signal.at);
        break;
      case 'departureStarted':
        if (!handlerStartedAt.has(signal.eventId)) handlerStartedAt.set(signal.eventId, signal.at);
        break;
      case 'departureReserved':
        departureReserveMs.push(signal.ms);
        break;
      case 'deferred':
        deferrals += 1;
        break;
      case 'retryScheduled':
        retriesScheduled += 1;
        break;
      case 'other':
        break;
    }
    if ('summary' in signal)
      otherLogs.set(signal.summary, (otherLogs.get(signal.summary) ?? 0) + 1);
  };
  const instancesOptions: Omit<InstancesOptions, 'count'> = {
    variant,
    settings: env,
    staticInstances: options.staticInstances,
    maxConcurrentCalls,
    queues,
    serviceBusConnectionString: serviceBus.connectionString,
  };
  const instanceProcesses =
    options.instanceProcesses <= 1 ? 0 : Math.min(options.instanceProcesses, instances);
  const hosts = await startInstanceHosts(instances, instanceProcesses, instancesOptions, onSignal);

  const client = new ServiceBusClient(serviceBus.connectionString);
  const waveSender = client.createSender(queues.mfaEnabled);
  const leavingSender = client.createSender(queues.employeeLeaving);
  const event = (id: string, type: string, user: string): ServiceBusMessage => ({
    body: { specversion: '1.0', id, source: '/bench', type, data: { user } },
    contentType: 'application/json',
    messageId: id,
  });
  const waveIds = waveUsers.map((_, i) => `wave-${i}`);
  const leaverIds = leavers.map((_, i) => `leaver-${i}`);
  const enqueuedAt = new Map<string, number>();

  const started = Date.now();
  const quotaTimers: NodeJS.Timeout[] = [];
  const { quotaDrop } = options;
  if (quotaDrop) {
    const setQuota = (writesPerWindow: number, at: number) =>
      quotaTimers.push(
        setTimeout(() => {
          graph.throttle({ ...quota, writesPerWindow }, { keepUsed: true });
          log(`${variant}: Graph's quota now ${writesPerWindow} writes per window`);
        }, at * 1000),
      );
    setQuota(Math.round(options.quotaWrites / 2), quotaDrop.fromSeconds);
    setQuota(options.quotaWrites, quotaDrop.toSeconds);
  }
  const stopTrace = options.trace
    ? traceQuota({
        connectionString: azurite.connectionString,
        tableName: 'OffboardingAudit',
        maxPerSecond: 20,
        quotaAt: (ms) => {
          const low =
            quotaDrop && ms >= quotaDrop.fromSeconds * 1000 && ms < quotaDrop.toSeconds * 1000;
          return {
            ...quota,
            writesPerWindow: low ? Math.round(quota.writesPerWindow / 2) : quota.writesPerWindow,
          };
        },
        requests: () => graph.requests,
        started,
        log,
      })
    : () => undefined;
  log(`${variant}: sending ${events} mfa.enabled events to ${instances} instances`);
  for (let i = 0; i < events; i += 100) {
    await waveSender.sendMessages(
      waveUsers
        .slice(i, i + 100)
        .map((user, j) => event(waveIds[i + j] ?? '', 'mfa.enabled', user.userPrincipalName)),
    );
  }
  const total = events + departures;
  const deadline = started + options.timeoutSeconds * 1000;
  let departuresSent = departures === 0;
  let timedOut = false;
  let lastReport = 0;
  for (;;) {
    const waveDone = waveIds.filter((id) => succeededAt.has(id)).length;
    if (!departuresSent && waveDone >= events / 2) {
      // Departures arrive in the middle of the wave, all at once (the hardest case).
      const now = Date.now();
      for (const id of leaverIds) enqueuedAt.set(id, now);
      await leavingSender.sendMessages(
        leavers.map((user, i) =>
          event(leaverIds[i] ?? '', 'employee.leaving', user.userPrincipalName),
        ),
      );
      departuresSent = true;
      log(`${variant}: ${departures} departures sent at ${((now - started) / 1000).toFixed(0)} s`);
    }
    const deadLettered =
      serviceBus.stats(queues.mfaEnabled).deadLettered +
      serviceBus.stats(queues.employeeLeaving).deadLettered;
    if (departuresSent && succeededAt.size + deadLettered >= total) break;
    if (Date.now() > deadline) {
      timedOut = true;
      break;
    }
    if (Date.now() - lastReport > 30_000) {
      lastReport = Date.now();
      log(
        `${variant}: ${((Date.now() - started) / 1000).toFixed(0)} s, ${succeededAt.size}/${total} done, ${graph.throttledCount()} x 429${topLogs()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  quotaTimers.forEach(clearTimeout);
  stopTrace();
  const finishedAt = Math.max(...succeededAt.values());
  const stats = Object.values(queues).map((q) => serviceBus.stats(q));
  const deadLettered = stats.reduce((sum, s) => sum + s.deadLettered, 0);
  const unfinished = stats.reduce((sum, s) => sum + s.active + s.scheduled + s.locked, 0);
  const revokedUsers = [...waveUsers, ...leavers].filter(
    (user) =>
      graph.getUser(user.id)?.signInSessionsValidFromDateTime !== DEFAULT_SESSIONS_VALID_FROM,
  ).length;
  const graphRequests = graph.requests.length;
  const throttled = graph.throttledCount();
  const departureSeconds = leaverIds
    .map((id) => {
      const done = succeededAt.get(id);
      const sent = enqueuedAt.get(id);
      return done === undefined || sent === undefined ? undefined : (done - sent) / 1000;
    })
    .filter((s): s is number => s !== undefined);

  const departureQueueSeconds = leaverIds
    .map((id) => {
      const begun = handlerStartedAt.get(id);
      const sent = enqueuedAt.get(id);
      return begun === undefined || sent === undefined ? undefined : (begun - sent) / 1000;
    })
    .filter((s): s is number => s !== undefined);

  await waveSender.close();
  await leavingSender.close();
  await client.close();
  const pacerStats = sumPacerStats(await Promise.all(hosts.map((host) => host.stop())));
  await Promise.all([serviceBus.stop(), graph.stop(), identity.stop(), azurite.stop()]);

  const graphWrites = events + 2 * departures;
  const writesPerSecond = (options.quotaWrites * 1000) / options.quotaWindowMs;
  const idealSeconds = idealUnderQuota(graphWrites, writesPerSecond, quotaDrop);
  const drainSeconds = (finishedAt - started) / 1000;
  return {
    variant,
    instances,
    instanceProcesses,
    maxConcurrentCalls,
    waveEvents: events,
    departures,
    graphWrites,
    quota: { writesPerSecond, ...(quotaDrop ? { drop: quotaDrop } : {}) },
    idealSeconds: round(idealSeconds, 1),
    drainSeconds: round(drainSeconds, 1),
    ratioToIdeal: round(drainSeconds / idealSeconds),
    graphRequests,
    throttled,
    throttledShare: round(throttled / Math.max(1, graphRequests), 4),
    succeeded: succeededAt.size,
    deadLettered,
    unfinished,
    lost: Math.max(0, total - succeededAt.size - deadLettered - unfinished),
    revokedUsers,
    retriesScheduled,
    deferrals,
    departureLatency: {
      p50Seconds: round(percentile(departureSeconds, 50)),
      p99Seconds: round(percentile(departureSeconds, 99)),
      maxSeconds: round(Math.max(...departureSeconds)),
    },
    departureBreakdown: {
      queueP50Seconds: round(percentile(departureQueueSeconds, 50)),
      queueP99Seconds: round(percentile(departureQueueSeconds, 99)),
      reserveP50Ms: round(percentile(departureReserveMs, 50), 0),
      reserveP99Ms: round(percentile(departureReserveMs, 99), 0),
    },
    ...(pacerStats ? { pacer: pacerStats } : {}),
    said: [...otherLogs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([line, count]) => ({ line: line.trim(), count })),
    timedOut,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      variant: { type: 'string', default: 'shared' },
      events: { type: 'string', default: '5000' },
      departures: { type: 'string', default: '50' },
      instances: { type: 'string', default: '16' },
      'static-instances': { type: 'string', default: '40' },
      'retry-after': { type: 'string', default: '5-30' },
      latency: { type: 'string', default: '80-400' },
      'quota-writes': { type: 'string', default: '600' },
      'quota-window-ms': { type: 'string', default: '30000' },
      'quota-drop': { type: 'string' },
      'timeout-seconds': { type: 'string', default: '900' },
      'instance-processes': { type: 'string', default: '4' },
      trace: { type: 'boolean', default: false },
    },
  });
  const variant = values.variant as Variant;
  if (!['baseline', 'shared', 'nohold', 'static'].includes(variant))
    throw new Error(`unknown variant ${variant}`);
  const latency = range(values.latency);
  const drop = values['quota-drop'] === undefined ? undefined : range(values['quota-drop']);
  const result = await runWave({
    variant,
    events: Number(values.events),
    departures: Number(values.departures),
    instances: Number(values.instances),
    staticInstances: Number(values['static-instances']),
    retryAfter: range(values['retry-after']),
    latency: { p50Ms: latency.min, p99Ms: latency.max },
    quotaWrites: Number(values['quota-writes']),
    quotaWindowMs: Number(values['quota-window-ms']),
    ...(drop ? { quotaDrop: { fromSeconds: drop.min, toSeconds: drop.max } } : {}),
    timeoutSeconds: Number(values['timeout-seconds']),
    instanceProcesses: Number(values['instance-processes']),
    trace: values.trace,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
