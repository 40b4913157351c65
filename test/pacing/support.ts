import type { BudgetParams } from '../../shared/pacing/budget';
import { SharedWritePacer, type BudgetStore, type Lane } from '../../shared/pacing/index';

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
