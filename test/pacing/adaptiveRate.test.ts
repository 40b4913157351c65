import { ErrorCodes, OffboardingError } from '../../shared/core/errors';
import {
  currentRate,
  defaultRateRule,
  lowerRate,
  onThrottled,
  onUsage,
} from '../../shared/pacing/adaptiveRate';
import type { BudgetParams } from '../../shared/pacing/budget';
import { MemoryBudgetStore, SharedWritePacer, type Lane } from '../../shared/pacing/index';
import { virtualPacer } from './support';

const PARAMS: BudgetParams = { ratePerSecond: 20, capacity: 440, departureReserve: 400 };
const RULE = defaultRateRule(20);
const T0 = 1_700_000_000_000;

describe('the rate Graph gives (the rule)', () => {
  it('is the configured rate until Graph says otherwise', () => {
    expect(currentRate(undefined, T0, RULE)).toBe(20);
    expect(currentRate({ tat: T0 }, T0, RULE)).toBe(20);
    // Under the threshold Graph takes the writes: nothing changes.
    const state = { tat: T0 + 1_000 };
    expect(onUsage(state, T0, 0.5, PARAMS, RULE)).toBe(state);
  });

  it('lowers by a tenth when Graph reports the quota nearly spent, once per episode', () => {
    const lowered = onUsage({ tat: T0 }, T0, 0.8, PARAMS, RULE);
    expect(lowered).toMatchObject({ rate: 18, loweredAt: T0 });
    // Every instance sees the header on its own writes: within a second it is the same episode.
    expect(onUsage(lowered, T0 + 500, 0.9, PARAMS, RULE)).toBe(lowered);
    expect(onUsage(lowered, T0 + 1_000, 0.9, PARAMS, RULE).rate).toBeCloseTo(
      (18 + 0.5 * 1.05) * 0.9,
    );
  });

  it('rises again while Graph takes the writes, faster the longer it does, never above the maximum', () => {
    const state = { tat: T0, rate: 10, loweredAt: T0 };
    // 2.5 % of the maximum a second at first, twice that after 20 s.
    expect(currentRate(state, T0 + 4_000, RULE)).toBeCloseTo(10 + 4 * 0.5 * 1.2);
    expect(currentRate(state, T0 + 10_000, RULE)).toBeCloseTo(10 + 10 * 0.5 * 1.5);
    expect(currentRate(state, T0 + 14_000, RULE)).toBe(20);
    expect(currentRate(state, T0 + 600_000, RULE)).toBe(20);
  });

  it('lowers by 30 % and pauses on a 429; later 429s of the same pause only extend it', () => {
    const throttled = onThrottled({ tat: T0 }, T0, T0 + 5_000, PARAMS, RULE);
    expect(throttled).toMatchObject({ rate: 14, loweredAt: T0, pausedUntil: T0 + 5_000 });
    const again = onThrottled(throttled, T0 + 2_000, T0 + 9_000, PARAMS, RULE);
    expect(again).toMatchObject({ rate: 14, loweredAt: T0, pausedUntil: T0 + 9_000 });
    // It rises only once the pause is over.
    expect(currentRate(again, T0 + 9_000, RULE)).toBe(14);
    expect(currentRate(again, T0 + 11_000, RULE)).toBeCloseTo(15.1);
  });

  it('never goes below a twentieth of the maximum', () => {
    let state = { tat: T0 };
    for (let i = 0; i < 100; i++) state = lowerRate(state, T0 + i * 1_000, PARAMS, RULE, 0.5);
    expect(currentRate(state, T0 + 99_000, RULE)).toBe(1);
  });

  it('keeps the departures their reserve when it lowers: only the wave headroom stays booked', () => {
    // The wave had booked 10 s ahead at 20/s (200 writes).
    const lowered = lowerRate({ tat: T0 + 10_000 }, T0, PARAMS, RULE, 0.5);
    // 40 writes (the wave's headroom) at the new 10/s: the reserve's 400 writes are all free.
    expect(lowered.tat).toBe(T0 + 4_000);
  });
});

/** Microsoft Graph's write quota as a token bucket, like the Graph stand-in's (virtual time). */
class SimulatedGraph {
  private tokens: number;
  private last = T0;
  accepted = 0;
  throttled = 0;
  constructor(
    private readonly capacity: number,
    public ratePerSecond: number,
  ) {
    this.tokens = capacity;
  }

  /** One write at `now`: the usage fraction (from 0.8) or 'throttled'. */
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
    const used = Math.round((1 - this.tokens / this.capacity) * 100) / 100;
    return used >= 0.8 ? used : undefined;
  }
}

/**
 * Instances sharing one in-memory budget store, each with concurrent invocations that reserve a
 * write, make it against the simulated Graph, report what Graph said, and start over; on a
 * virtual clock, so minutes of pacing take milliseconds.
 */
async function simulate(options: {
  graph: SimulatedGraph;
  writes: number;
  instances?: number;
  invocations?: number;
  /** Called at every step with the virtual time, to change Graph's quota. */
  onTick?: (elapsedMs: number) => void;
}) {
  const clock = { now: T0 };
  const timers: Array<{ at: number; resolve: () => void }> = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => timers.push({ at: clock.now + Math.max(0, ms), resolve }));
  const store = new MemoryBudgetStore();
  const pacers = Array.from(
    { length: options.instances ?? 4 },
    () =>
      new SharedWritePacer({
        params: PARAMS,
        store,
        maxWaitMs: 30_000,
        waveHoldMs: 15_000,
        waveLeaseWrites: 8,
        now: () => clock.now,
        sleep,
        random: () => 0.5,
      }),
  );
  const rates: Array<{ at: number; rate: number }> = [];
  let done = 0;
  const invocation = async (pacer: SharedWritePacer, lane: Lane) => {
    while (done < options.writes) {
      try {
        await pacer.reserve(lane, 1);
      } catch (error) {
        if (!(error instanceof OffboardingError) || error.code !== ErrorCodes.Deferred) throw error;
        await sleep((error.retryAfterSeconds ?? 1) * 1000);
        continue;
      }
      const said = options.graph.write(clock.now);
      if (said === 'throttled') {
        pacer.reportThrottled(5);
        await sleep(5_000);
        continue;
      }
      if (said !== undefined) pacer.reportUsage(said);
      done += 1;
      await sleep(200); // Graph's latency and the verification read.
    }
  };
  const running = pacers.flatMap((pacer) =>
    Array.from({ length: options.invocations ?? 16 }, () => invocation(pacer, 'wave')),
  );
  let finished = false;
  void Promise.all(running).then(() => (finished = true));
  while (!finished) {
    await new Promise((resolve) => setImmediate(resolve));
    timers.sort((a, b) => a.at - b.at);
    const next = timers.shift();
    if (!next) break;
    clock.now = Math.max(clock.now, next.at);
    options.onTick?.(clock.now - T0);
    rates.push({ at: clock.now - T0, rate: pacers[0]?.currentRate() ?? NaN });
    next.resolve();
  }
  await Promise.all(running);
  return { seconds: (clock.now - T0) / 1000, rates, pacers, clock, store };
}

describe('the shared budget finds the rate Graph gives (simulated Graph, in-memory store)', () => {
  it('settles at half the quota when another app takes the other half', async () => {
    const graph = new SimulatedGraph(300, 10);
    const { seconds, rates } = await simulate({ graph, writes: 2_000 });
    const ideal = 2_000 / 10;
    expect(seconds).toBeLessThanOrEqual(ideal * 1.1);
    expect(graph.throttled).toBeLessThanOrEqual(2_000 * 0.02);
    expect(Math.max(...rates.map((r) => r.rate))).toBeLessThanOrEqual(20);
    // It found the quota: lowered towards it again and again (Graph's bucket absorbs the climbs).
    const late = rates.filter((r) => r.at > 100_000).map((r) => r.rate);
    expect(Math.min(...late)).toBeLessThan(12);
  });

  it('keeps the full rate, without lowering it, while Graph gives the whole quota', async () => {
    const graph = new SimulatedGraph(600, 20);
    const { seconds, rates, pacers } = await simulate({ graph, writes: 2_000 });
    expect(graph.throttled).toBe(0);
    expect(seconds).toBeLessThanOrEqual((2_000 / 20) * 1.05);
    expect(rates.every((r) => r.rate === 20)).toBe(true);
    expect(pacers.every((p) => p.stats().rebooked === 0)).toBe(true);
  });

  it('follows a quota that halves mid-wave and comes back', async () => {
    const graph = new SimulatedGraph(600, 20);
    const { seconds, rates } = await simulate({
      graph,
      writes: 3_000,
      onTick: (elapsed) => (graph.ratePerSecond = elapsed >= 40_000 && elapsed < 140_000 ? 10 : 20),
    });
    // 800 writes before the drop, 1,000 during it, 1,200 after: 40 + 100 + 60 s.
    expect(seconds).toBeLessThanOrEqual(200 * 1.1);
    expect(graph.throttled).toBeLessThanOrEqual(3_000 * 0.02);
    const before = rates.filter((r) => r.at < 40_000).map((r) => r.rate);
    expect(Math.min(...before)).toBe(20);
    const during = rates.filter((r) => r.at > 40_000 && r.at < 140_000).map((r) => r.rate);
    expect(Math.min(...during)).toBeLessThan(12);
    // Back at the full rate once Graph gives it again.
    const last = rates.filter((r) => r.at > seconds * 1000 - 10_000).map((r) => r.rate);
    expect(Math.min(...last)).toBe(20);
  });

  it('lets a departure start at once after the rate was lowered: the reserve is kept', async () => {
    const { pacer, starts, clock } = virtualPacer(new MemoryBudgetStore(), {
      params: PARAMS,
      clock: { now: T0 },
    });
    // The wave books as far ahead as it may, then Graph reports 90 % used.
    await Promise.allSettled(Array.from({ length: 400 }, () => pacer.reserve('wave', 1)));
    pacer.reportUsage(0.9);
    await new Promise((resolve) => setImmediate(resolve));
    expect(pacer.currentRate()).toBe(18);
    clock.now += 100;
    await pacer.reserve('departure', 2);
    expect(starts.at(-1)).toMatchObject({ lane: 'departure', at: clock.now });
  });

  it('shares the lowered rate: another instance learns it from the store and re-books its wave', async () => {
    const store = new MemoryBudgetStore();
    const clock = { now: T0 };
    const waits: Array<() => void> = [];
    const make = () =>
      new SharedWritePacer({
        params: PARAMS,
        store,
        maxWaitMs: 30_000,
        now: () => clock.now,
        // Slots wait until the test wakes them; a lost race retries at once.
        sleep: (ms) =>
          ms > 0 ? new Promise<void>((resolve) => waits.push(resolve)) : Promise.resolve(),
        random: () => 0,
      });
    const first = make();
    const second = make();
    // The second instance books wave writes ahead at 20/s; they wait for their slots.
    const booked = Array.from({ length: 60 }, () => second.reserve('wave', 1));
    await new Promise((resolve) => setImmediate(resolve));
    // Graph answers the first instance 429: the budget is lowered for everyone.
    first.reportThrottled(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(await store.read()).toMatchObject({ rate: 14, pausedUntil: T0 + 2_000 });
    // The second instance learns it with its next booking (its write loses the race, it reads).
    await second.reserve('departure', 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(second.currentRate()).toBe(14);
    // Its writes booked before the 429 wake up and go back to be booked at the new rate.
    clock.now += 3_000;
    waits.splice(0).forEach((wake) => wake());
    await new Promise((resolve) => setImmediate(resolve));
    expect(second.stats().rebooked).toBeGreaterThan(0);
    waits.splice(0).forEach((wake) => wake());
    await Promise.allSettled(booked);
  });
});
