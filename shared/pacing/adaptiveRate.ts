import type { BudgetParams } from './budget';
import type { BudgetState } from './budgetStore';

/**
 * The rate Graph actually gives. Graph's write quota is per app and tenant, but the tenant's own
 * quota (18,000 writes per 5 minutes) is shared with every other app, so the app may get less than
 * PACING_WRITES_PER_SECOND, and the share moves. The budget finds it by additive increase and
 * multiplicative decrease, kept in the shared budget so every instance paces to the same rate:
 * lowered when Graph says the quota is nearly spent (x-ms-throttle-limit-percentage, sent from
 * 0.8 of it) or answers 429, raised again at a steady pace while Graph takes the writes, never
 * above the configured rate.
 */
export interface RateRule {
  /** PACING_WRITES_PER_SECOND: the rate never goes above it. */
  maxPerSecond: number;
  /**
   * Rise per second, as a share of the maximum, right after a lowering; it doubles every
   * `riseDoublingMs` that Graph keeps taking the writes, so a quota that came back is found fast.
   */
  risePerSecond: number;
  riseDoublingMs: number;
  /** Graph's usage (x-ms-throttle-limit-percentage) from which the rate is lowered. */
  usageThreshold: number;
  /** Factor applied when Graph reports usage at or over the threshold. */
  usageFactor: number;
  /** Factor applied on a 429 (once per Retry-After pause). */
  throttleFactor: number;
  /** The rate never goes below this share of the maximum. */
  minShare: number;
  /** Reports within this long of the last lowering are the same episode: lowered once. */
  lowerSpacingMs: number;
}

/**
 * Measured in the benchmark (docs/benchmarks.md, the budget traced beside Graph's quota): lowering
 * by a tenth a second let writes booked at the old rate spend Graph's last fifth, and the 429 that
 * followed stopped every instance for its Retry-After (21 s of no writes). Lowered by 30 % at the
 * first header, the rate is under half the quota within two or three lowerings, before that fifth
 * is spent; 2 s between lowerings lets Graph's bucket refill under the mark instead of diving.
 * The rise's pace grows the longer Graph takes the writes (twice as fast after 40 s), so the climb
 * from half the quota back to all of it takes about 15 s; doubling after 20 s overshot Graph's
 * bucket into 429s at 8-9 writes/s in the simulation (test/pacing/support.ts).
 */
export function defaultRateRule(maxPerSecond: number): RateRule {
  return {
    maxPerSecond,
    risePerSecond: 0.025,
    riseDoublingMs: 40_000,
    usageThreshold: 0.8,
    usageFactor: 0.7,
    throttleFactor: 0.7,
    minShare: 0.05,
    lowerSpacingMs: 2_000,
  };
}

/** The rate the budget paces at now: the last lowered rate plus its rise since, up to the max. */
export function currentRate(state: BudgetState | undefined, now: number, rule: RateRule): number {
  if (state?.rate === undefined) return rule.maxPerSecond;
  const risingSince = Math.max(state.loweredAt ?? 0, state.pausedUntil ?? 0);
  const rising = Math.max(0, now - risingSince);
  // The rise's own pace grows linearly: rate + r t (1 + t / doubling).
  const rise =
    (rising / 1000) * (1 + rising / rule.riseDoublingMs) * rule.risePerSecond * rule.maxPerSecond;
  return Math.min(rule.maxPerSecond, state.rate + rise);
}

/**
 * Lowers the rate by `factor` (unless it was lowered within lowerSpacingMs: the same episode).
 * The writes already booked ahead are re-expressed at the new rate, but the wave's are not kept:
 * every instance re-books its wave writes that were booked before a lowering it learns of, so at
 * most the wave's headroom stays booked; the departures' reserve is untouched.
 */
export function lowerRate(
  state: BudgetState,
  now: number,
  params: BudgetParams,
  rule: RateRule,
  factor: number,
): BudgetState {
  if (state.loweredAt !== undefined && now - state.loweredAt < rule.lowerSpacingMs) return state;
  const before = currentRate(state, now, rule);
  const rate = Math.max(rule.minShare * rule.maxPerSecond, before * factor);
  const bookedWrites = (Math.max(0, state.tat - now) * before) / 1000;
  const kept = Math.min(bookedWrites, params.capacity - params.departureReserve);
  return { ...state, tat: now + (kept * 1000) / rate, rate, loweredAt: now };
}

/** Graph's usage report: lowers the rate when it is at or over the threshold. */
export function onUsage(
  state: BudgetState,
  now: number,
  usedFraction: number,
  params: BudgetParams,
  rule: RateRule,
): BudgetState {
  if (!(usedFraction >= rule.usageThreshold)) return state;
  return lowerRate(state, now, params, rule, rule.usageFactor);
}

/**
 * Graph answered 429 with Retry-After: nobody writes before `until`, and the first 429 of a pause
 * lowers the rate (the others, from writes already in flight, only extend the pause).
 */
export function onThrottled(
  state: BudgetState,
  now: number,
  until: number,
  params: BudgetParams,
  rule: RateRule,
): BudgetState {
  const pausedUntil = Math.max(state.pausedUntil ?? 0, until);
  if (now < (state.pausedUntil ?? 0)) return { ...state, pausedUntil };
  return { ...lowerRate(state, now, params, rule, rule.throttleFactor), pausedUntil };
}
