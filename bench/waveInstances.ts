/**
 * Function instances of the wave benchmark: each a local runner (dev/localRunner.ts) with its own
 * runtime and host.json's maxConcurrentCalls. They run in the wave's process, or in child
 * processes of it (`--instance-processes`), so that 40 instances do not share one event loop with
 * each other and with the stand-ins. What the instances say reaches the wave as signals (over IPC
 * from a child process).
 */
import { startLocalRunner, type LocalRunner } from '../dev/localRunner';
import { queueBindings } from '../shared/adapters/functionHandler';
import { createRuntime, type Runtime } from '../shared/app/runtime';
import { loadConfig } from '../shared/app/config';
import { OffboardingService } from '../shared/core/offboard';
import { QueueProcessor } from '../shared/core/queueProcessing';
import {
  DEFAULT_PACING,
  createWritePacer,
  reportingThrottles,
  type Lane,
  type PacerStats,
  type PacerWithFeedback,
  type WritePacer,
} from '../shared/pacing/index';

/**
 * baseline: no pacing (today). shared: design (a) as shipped. nohold: (a) with the wave hold off
 * (PacingSettings.holdWave; on by default). static: design (b).
 */
export type Variant = 'baseline' | 'shared' | 'nohold' | 'static';

export interface InstancesOptions {
  count: number;
  variant: Variant;
  /** App settings of every instance (as the Functions host passes them). */
  settings: Record<string, string>;
  staticInstances: number;
  maxConcurrentCalls: number;
  queues: { employeeLeaving: string; mfaEnabled: string };
  serviceBusConnectionString: string;
}

/** What an instance says that the wave counts. */
export type InstanceSignal =
  | { kind: 'verified'; eventId: string; at: number }
  | { kind: 'deferred'; summary: string }
  | { kind: 'retryScheduled'; summary: string }
  | { kind: 'other'; summary: string }
  | { kind: 'departureStarted'; eventId: string; at: number }
  | { kind: 'departureReserved'; ms: number };

export interface Instances {
  /** Stops the runners and runtimes; the static design's pacer counters, summed. */
  stop(): Promise<PacerStats | undefined>;
}

/**
 * A runtime whose use case reserves through the given pacer (design b, not what ships), wired as
 * createRuntime wires the shipped one: OffboardingDeps.pacer, and a Directory that reports Graph's
 * 429s to the same pacer.
 */
function pacedRuntime(
  runtime: Runtime,
  pacer: PacerWithFeedback,
  onReserved: (lane: Lane, ms: number) => void,
): Runtime {
  const { config } = runtime;
  const timed: WritePacer = {
    reserve: async (lane, writes) => {
      const started = performance.now();
      try {
        await pacer.reserve(lane, writes);
      } finally {
        onReserved(lane, performance.now() - started);
      }
    },
  };
  const offboarding = new OffboardingService({
    directory: reportingThrottles(runtime.directory, pacer),
    audit: runtime.audit,
    timelines: runtime.timelines,
    policy: config.policy,
    scheduler: runtime.scheduler,
    queues: config.queues,
    retry: config.retry,
    pacer: timed,
  });
  const queueProcessor = new QueueProcessor({
    offboarding,
    scheduler: runtime.scheduler,
    queues: config.queues,
    retry: config.retry,
  });
  return { ...runtime, offboarding, queueProcessor };
}

/** The signal a log line of an instance gives, if the wave counts it. */
function signalOf(text: string): InstanceSignal | undefined {
  if (text.startsWith('Event processed')) {
    const summary = JSON.parse(text.slice(text.indexOf('{'))) as {
      eventId?: string;
      outcome?: string;
      verified?: boolean;
    };
    return summary.eventId !== undefined &&
      summary.outcome === 'succeeded' &&
      summary.verified === true
      ? { kind: 'verified', eventId: summary.eventId, at: Date.now() }
      : undefined;
  }
  // By its first words and what follows the JSON (the reason), for the progress line.
  const brace = text.indexOf('{');
  const code = /"errorCode":"(\w+)"/.exec(text)?.[1] ?? '';
  const summary = `${brace < 0 ? text.slice(0, 80) : text.slice(0, brace).trim()} ${code}${brace < 0 ? '' : text.slice(text.indexOf('}', brace) + 1, text.indexOf('}', brace) + 120)}`;
  if (text.startsWith('Event waits')) return { kind: 'deferred', summary };
  if (text.startsWith('Event failed transiently')) return { kind: 'retryScheduled', summary };
  return { kind: 'other', summary };
}

export function startInstances(
  options: InstancesOptions,
  signal: (s: InstanceSignal) => void,
): Instances {
  const { queues, variant } = options;
  const runtimes: Runtime[] = [];
  const runners: LocalRunner[] = [];
  const pacers: PacerWithFeedback[] = [];
  // baseline: pacing off. shared: createRuntime as it ships (PACING_* defaults, one budget in the
  // audit table for all instances); nohold: the same without the wave hold. static: pacing off in
  // createRuntime, and each instance's use case given its own in-memory pacer at 1/N of the budget.
  const paced = variant === 'shared' || variant === 'nohold';
  const settings = paced
    ? options.settings
    : { ...options.settings, PACING_WRITES_PER_SECOND: '0' };
  for (let i = 0; i < options.count; i++) {
    const config = loadConfig(settings);
    if (variant === 'nohold') config.pacing = { ...config.pacing, holdWave: false };
    const base = createRuntime(config, { requireServiceBus: true });
    runtimes.push(base);
    // The shipped pacer's counters too (budget store calls per event).
    if (paced) pacers.push(base.pacer);
    let runtime = base;
    if (variant === 'static') {
      const pacer = createWritePacer({
        settings: DEFAULT_PACING,
        store: { kind: 'staticShare', instances: options.staticInstances },
      });
      pacers.push(pacer);
      runtime = pacedRuntime(base, pacer, (lane, ms) => {
        if (lane === 'departure') signal({ kind: 'departureReserved', ms });
      });
    }
    const bindings = queueBindings(() => runtime, queues).map((binding) => {
      const departure = binding.queueName === queues.employeeLeaving;
      return {
        ...binding,
        handler: (message: unknown, context: Parameters<typeof binding.handler>[1]) => {
          const id = (message as { id?: unknown } | undefined)?.id;
          if (departure && typeof id === 'string')
            signal({ kind: 'departureStarted', eventId: id, at: Date.now() });
          return binding.handler(message, context);
        },
      };
    });
    runners.push(
      startLocalRunner({
        connectionString: options.serviceBusConnectionString,
        bindings,
        maxConcurrentCalls: options.maxConcurrentCalls,
        onLog: ({ text }) => {
          const said = signalOf(text);
          if (said) signal(said);
        },
      }),
    );
  }
  return {
    stop: async () => {
      await Promise.all(runners.map((r) => r.stop()));
      await Promise.all(runtimes.map((r) => r.close()));
      return sumPacerStats(pacers.map((p) => p.stats?.()));
    },
  };
}

/** Sums the pacers' counters (of instances, or of instance processes). */
export function sumPacerStats(all: Array<PacerStats | undefined>): PacerStats | undefined {
  return all
    .filter((stats): stats is PacerStats => stats !== undefined)
    .reduce<PacerStats | undefined>((sum, stats) => {
      if (!sum) return { ...stats };
      for (const key of Object.keys(sum) as (keyof PacerStats)[]) sum[key] += stats[key];
      return sum;
    }, undefined);
}

/** Messages between the wave and a child process of instances. */
export type ToInstances = { kind: 'start'; options: InstancesOptions } | { kind: 'stop' };
export type FromInstances =
  { kind: 'signals'; signals: InstanceSignal[] } | { kind: 'stopped'; pacer?: PacerStats };

/** A child process of instances: signals go to the wave in batches (every 100 ms). */
function serveAsChild(): void {
  const send = (message: FromInstances) => process.send?.(message);
  let pending: InstanceSignal[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    send({ kind: 'signals', signals: pending });
    pending = [];
  };
  const timer = setInterval(flush, 100);
  let instances: Instances | undefined;
  process.on('message', (message: ToInstances) => {
    if (message.kind === 'start') {
      instances = startInstances(message.options, (s) => pending.push(s));
    } else {
      void (async () => {
        const pacer = await instances?.stop();
        clearInterval(timer);
        flush();
        send(pacer ? { kind: 'stopped', pacer } : { kind: 'stopped' });
        process.disconnect?.();
      })();
    }
  });
  // The wave went away (crashed or was stopped): so do we.
  process.on('disconnect', () => process.exit(0));
}

if (require.main === module) serveAsChild();
