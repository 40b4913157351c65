import { ErrorCodes, OffboardingError } from '../../shared/core/errors';
import type { RateRule } from '../../shared/pacing/adaptiveRate';
import type { BudgetParams } from '../../shared/pacing/budget';
import {
  MemoryBudgetStore,
  SharedWritePacer,
  type BudgetStore,
  type Lane,
} from '../../shared/pacing/index';

export interface StartedWrites {
  at: number;
  writes: number;
}

/**
 * How far a schedule of write starts exceeds the token bucket (capacity C, rate r): the largest
 * `writes started in [a, b] - (C + r (b - a))` over all windows; at most 0 when it conforms.
 */
export function worstOverGrant(starts: StartedWrites[], params: BudgetParams): number {
  const sorted = [...starts].sort((x, y) => x.at - y.at);
  let worst = -Infinity;
  for (let i = 0; i < sorted.length; i++) {
    let writes = 0;
    const from = sorted[i]?.at ?? 0;
    for (let j = i; j < sorted.length; j++) {
      const started = sorted[j];
      if (!started) break;
      writes += started.writes;
      const allowed = params.capacity + (params.ratePerSecond * (started.at - from)) / 1000;
      worst = Math.max(worst, writes - allowed);
    }
  }
  return worst;
}

/** A pacer on a virtual clock: sleeping records the wait and moves nothing. */
export function virtualPacer(
  store: BudgetStore,
  options: {
    params: BudgetParams;
    clock: { now: number };
    maxWaitMs?: number;
    waveMaxWaitMs?: number;
  },
) {
  const { clock } = options;
  /** When each granted reservation's writes may start. */
  const starts: Array<StartedWrites & { lane: Lane }> = [];
  const pacer = new SharedWritePacer({
    params: options.params,
    store,
    maxWaitMs: options.maxWaitMs ?? 30_000,
    ...(options.waveMaxWaitMs === undefined ? {} : { waveMaxWaitMs: options.waveMaxWaitMs }),
    onGranted: ({ lane, writes, startAt }) => starts.push({ at: startAt, writes, lane }),
    now: () => clock.now,
    sleep: () => Promise.resolve(),
    random: () => 0.5,
  });
  const reserve = (lane: Lane, writes: number) => pacer.reserve(lane, writes);
  return { pacer, reserve, starts, clock };
}

/** Epoch ms the simulations start at. */
export const SIM_T0 = 1_700_000_000_000;

/** Microsoft Graph's write quota as a token bucket, like the Graph stand-in's (virtual time). */
export class SimulatedGraph {
  private tokens: number;
  private last = SIM_T0;
  accepted = 0;
  /** When each accepted write came (ms since the start). */
  readonly acceptedAt: number[] = [];
  throttled = 0;
  constructor(
    private readonly capacity: number,
    public ratePerSecond: number,
  ) {
    this.tokens = capacity;
  }

  /** One write at `now`: the usage fraction (from 0.8, rounded as Graph sends it) or 'throttled'. */
  write(now: number): number | 'throttled' | undefined {
    this.tokens = Math.min(
      this.capacity,
      this.tokens + ((now - this.last) * this.ratePerSecond) / 1000,
    );
    this.last = now;
    if (this.tokens < 1) {
      this.throttled += 1;
      return 'throttled';
    }
    this.tokens -= 1;
    this.accepted += 1;
    this.acceptedAt.push(now - SIM_T0);
    const used = Math.round((1 - this.tokens / this.capacity) * 100) / 100;
    return used >= 0.8 ? Math.round(used * 10) / 10 : undefined;
  }
}

export interface SimulationOptions {
  params: BudgetParams;
  graph: SimulatedGraph;
  /** Wave writes (one per event). */
  writes: number;
  instances?: number;
  /** Concurrent invocations per instance (host.json maxConcurrentCalls). */
  invocations?: number;
  /** Called at every step with the virtual time, to change Graph's quota. */
  onTick?: (elapsedMs: number) => void;
  /** Graph's Retry-After on a 429, seconds (default 5). */
  retryAfterSeconds?: () => number;
  /** Graph's latency plus the verification read, ms (default 200). */
  latencyMs?: () => number;
  /** This many departures (2 writes each) arrive when half the wave is done. */
  departures?: number;
  rateRule?: RateRule;
  /**
   * Each budget store call's round trip, ms (default 0). Table Storage answers in milliseconds, but
   * an instance learns of another's lowering only through the store: without a delay the
   * simulation would learn it at once.
   */
  storeLatencyMs?: () => number;
}

/**
 * Instances sharing one in-memory budget store, each with concurrent invocations that reserve a
 * write, make it against the simulated Graph, report what Graph said, and start over (a 429 or a
 * deferral: after its Retry-After); on a virtual clock, so minutes of pacing take milliseconds.
 */
export async function simulateWave(options: SimulationOptions) {
  const clock = { now: SIM_T0 };
  const timers: Array<{ at: number; resolve: () => void }> = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => timers.push({ at: clock.now + Math.max(0, ms), resolve }));
  const memory = new MemoryBudgetStore();
  const storeLatency = options.storeLatencyMs;
  const store: BudgetStore = storeLatency
    ? {
        read: () => sleep(storeLatency()).then(() => memory.read()),
        write: (budget, etag) => sleep(storeLatency()).then(() => memory.write(budget, etag)),
      }
    : memory;
  const pacers = Array.from(
    { length: options.instances ?? 4 },
    () =>
      new SharedWritePacer({
        params: options.params,
        store,
        maxWaitMs: 30_000,
        waveHoldMs: 15_000,
        waveLeaseWrites: 8,
        ...(options.rateRule ? { rateRule: options.rateRule } : {}),
        now: () => clock.now,
        sleep,
        random: () => 0.5,
      }),
  );
  const rates: Array<{ at: number; rate: number }> = [];
  const departureSeconds: number[] = [];
  let done = 0;
  /** Makes `writes` writes for one event until Graph takes them all. */
  const event = async (pacer: SharedWritePacer, lane: Lane, writes: number) => {
    for (;;) {
      try {
        await pacer.reserve(lane, writes);
      } catch (error) {
        if (!(error instanceof OffboardingError) || error.code !== ErrorCodes.Deferred) throw error;
        await sleep((error.retryAfterSeconds ?? 1) * 1000);
        continue;
      }
      let throttled = false;
      for (let i = 0; i < writes && !throttled; i++) {
        const said = options.graph.write(clock.now);
        if (said === 'throttled') {
          const retryAfter = options.retryAfterSeconds?.() ?? 5;
          pacer.reportThrottled(retryAfter);
          await sleep(retryAfter * 1000);
          throttled = true;
        } else if (said !== undefined) pacer.reportUsage(said);
      }
      // Graph's latency and the verification read.
      await sleep(options.latencyMs?.() ?? 200);
      if (!throttled) return;
    }
  };
  let departuresSent = false;
  const invocation = async (pacer: SharedWritePacer, index: number) => {
    while (done < options.writes) {
      if (!departuresSent && options.departures && done >= options.writes / 2) {
        departuresSent = true;
        const sentAt = clock.now;
        for (let d = 0; d < options.departures; d++) {
          const departurePacer = pacers[(index + d) % pacers.length] ?? pacer;
          void event(departurePacer, 'departure', 2).then(() =>
            departureSeconds.push((clock.now - sentAt) / 1000),
          );
        }
      }
      await event(pacer, 'wave', 1);
      done += 1;
    }
  };
  const running = pacers.flatMap((pacer, p) =>
    Array.from({ length: options.invocations ?? 16 }, () => invocation(pacer, p)),
  );
  let finished = false;
  void Promise.all(running).then(() => (finished = true));
  while (!finished || departureSeconds.length < (departuresSent ? (options.departures ?? 0) : 0)) {
    await new Promise((resolve) => setImmediate(resolve));
    timers.sort((a, b) => a.at - b.at);
    const next = timers.shift();
    if (!next) break;
    clock.now = Math.max(clock.now, next.at);
    options.onTick?.(clock.now - SIM_T0);
    rates.push({ at: clock.now - SIM_T0, rate: pacers[0]?.currentRate() ?? NaN });
    next.resolve();
  }
  await Promise.all(running);
  return {
    seconds: (clock.now - SIM_T0) / 1000,
    rates,
    pacers,
    clock,
    store: memory,
    departureSeconds,
  };
}
