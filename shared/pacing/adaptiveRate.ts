import type { BudgetParams } from './budget';
import type { BudgetState } from './budgetStore';

/**
 * The rate Graph actually gives. Graph's write quota is per app and tenant, but the tenant's own
 * quota (18,000 writes per 5 minutes) is shared with every other app, so the app may get less than
 * PACING_WRITES_PER_SECOND, and the share moves. The budget finds it by additive increase and
 * multiplicative decrease, kept in the shared budget so every instance paces to the same rate:
 * lowered when Graph says the quota is nearly spent (x-ms-throttle-limit-percentage, sent from
 * 0.8 of it) and is not getting better, or answers 429; held while Graph keeps saying so; raised
 * again at a growing pace once it stops; never above the configured rate.
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
  /** No report for this long: Graph's bucket is under the mark again, and the rate may rise. */
  quietMs: number;
  /** Usage not lower this long after a lowering: the lowering was not enough, lowered again. */
  settleMs: number;
}

/**
 * Measured in the benchmark (docs/benchmarks.md, the budget traced beside Graph's quota): lowering
 * by a tenth a second let writes booked at the old rate spend Graph's last fifth, and the 429 that
 * followed stopped every instance for its Retry-After (21 s of no writes). Lowered by 30 % at the
 * first header, the rate is under half the quota within two or three lowerings, before that fifth
 * is spent. Lowering again at every report kept cutting while Graph's bucket was already emptying
 * (down to a third of the quota): a report lowers only when the usage rose since the last lowering
 * or has not fallen within 10 s (Graph sends it to a tenth, a tenth of its bucket at a deficit of
 * 30 % of the quota takes about 10 s). The rise's pace grows the longer Graph takes the writes
 * (twice as fast after 40 s), so the climb from half the quota back to all of it takes about 15 s.
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
    quietMs: 2_000,
    settleMs: 10_000,
  };
}

/** Graph's reports within this long of each other are kept as one (fewer budget writes). */
const HEARD_RESOLUTION_MS = 1_000;

/**
 * The rate the budget paces at now: the last lowered (or held) rate plus its rise since, up to the
 * max. It rises from the latest of the lowering, the end of a pause and Graph's last report.
 */
export function currentRate(state: BudgetState | undefined, now: number, rule: RateRule): number {
  if (state?.rate === undefined) return rule.maxPerSecond;
  const risingSince = Math.max(
    state.loweredAt ?? 0,
    state.pausedUntil ?? 0,
    state.heardAt === undefined ? 0 : state.heardAt + rule.quietMs,
  );
  const rising = Math.max(0, now - risingSince);
  // The rise's own pace grows linearly: rate + r t (1 + t / doubling).
  const rise =
    (rising / 1000) * (1 + rising / rule.riseDoublingMs) * rule.risePerSecond * rule.maxPerSecond;
  return Math.min(rule.maxPerSecond, state.rate + rise);
}

/**
 * The writes booked ahead re-expressed at `rate`: the bucket counts writes, not seconds. Booked at
 * a low rate and kept as a time, they would hold the bucket shut after the rate rose again.
 */
export function atRate(state: BudgetState, now: number, rate: number): BudgetState {
  const was = state.tatRate ?? rate;
  if (was === rate) return state.tatRate === rate ? state : { ...state, tatRate: rate };
  const ahead = Math.max(0, state.tat - now);
  return { ...state, tat: Math.min(state.tat, now) + (ahead * was) / rate, tatRate: rate };
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
  const booked = atRate(state, now, before);
  const rate = Math.max(rule.minShare * rule.maxPerSecond, before * factor);
  const bookedWrites = (Math.max(0, booked.tat - now) * before) / 1000;
  const kept = Math.min(bookedWrites, params.capacity - params.departureReserve);
  return { ...booked, tat: now + (kept * 1000) / rate, tatRate: rate, rate, loweredAt: now };
}

/** Graph reported its usage at the mark: the rate holds (its rise so far kept) until it stops. */
function heard(state: BudgetState, now: number, rule: RateRule): BudgetState {
  if (state.heardAt !== undefined && now - state.heardAt < HEARD_RESOLUTION_MS) return state;
  // The rise so far is kept in `rate`: from now on it is measured from the report's end.
  const held = state.rate === undefined ? {} : { rate: currentRate(state, now, rule) };
  return { ...state, ...held, heardAt: now };
}

/**
 * Graph's usage report. At or over the threshold the rate holds, and is lowered when this is a new
 * episode (no report for quietMs), when the usage rose since the last lowering, or when it has not
 * fallen settleMs after it; never during a 429's pause (the 429 lowered it already).
 */
export function onUsage(
  state: BudgetState,
  now: number,
  usedFraction: number,
  params: BudgetParams,
  rule: RateRule,
): BudgetState {
  if (!(usedFraction >= rule.usageThreshold)) return state;
  const sinceLowered = now - (state.loweredAt ?? -Infinity);
  const newEpisode = state.heardAt === undefined || now - state.heardAt > rule.quietMs;
  const last = newEpisode ? 0 : (state.usage ?? 0);
  const lower =
    now >= (state.pausedUntil ?? 0) &&
    sinceLowered >= rule.lowerSpacingMs &&
    (usedFraction > last || (usedFraction >= last && sinceLowered >= rule.settleMs));
  if (!lower) return heard(state, now, rule);
  const lowered = lowerRate(state, now, params, rule, rule.usageFactor);
  return { ...lowered, usage: usedFraction, heardAt: now };
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
