/**
 * The shared budget beside the quota Graph gives, second by second (waveRun `--trace`): what the
 * budget paces at (rate, writes booked ahead, pause) read from its Table Storage entity, and what
 * the Graph stand-in took (writes answered, 429s, its bucket's fill replayed from those writes).
 */
import { TableClient } from '@azure/data-tables';
import type { RecordedRequest } from '../dev/graph-standin/index';
import { currentRate, defaultRateRule } from '../shared/pacing/adaptiveRate';
import { TableBudgetStore } from '../shared/pacing/tableBudgetStore';

export interface QuotaTraceOptions {
  connectionString: string;
  tableName: string;
  /** PACING_WRITES_PER_SECOND of the app. */
  maxPerSecond: number;
  /** Graph's quota at a time (ms since start): writes per window, window. */
  quotaAt: (msSinceStart: number) => { writesPerWindow: number; windowMs: number };
  requests: () => readonly RecordedRequest[];
  started: number;
  log: (line: string) => void;
}

const isWrite = (r: RecordedRequest) => r.operation === 'revoke' || r.operation === 'patch';

/** Starts logging one line a second; returns the function that stops it. */
export function traceQuota(options: QuotaTraceOptions): () => void {
  const store = new TableBudgetStore(
    TableClient.fromConnectionString(options.connectionString, options.tableName, {
      allowInsecureConnection: true,
    }),
  );
  const rule = defaultRateRule(options.maxPerSecond);
  let tookBefore = 0;
  let throttledBefore = 0;
  let last = options.started;
  let tokens = options.quotaAt(0).writesPerWindow;
  const timer = setInterval(() => {
    void (async () => {
      const now = Date.now();
      // Answered writes so far (a record is kept from arrival; its answer comes later).
      const answered = options.requests().filter((r) => isWrite(r) && r.status !== 0);
      const throttledSoFar = answered.filter((r) => r.fault === 'throttle').length;
      const taken = answered.length - throttledSoFar - tookBefore;
      const throttled = throttledSoFar - throttledBefore;
      tookBefore += taken;
      throttledBefore = throttledSoFar;
      const quota = options.quotaAt(now - options.started);
      tokens = Math.min(
        quota.writesPerWindow,
        tokens + ((now - last) * quota.writesPerWindow) / quota.windowMs,
      );
      tokens = Math.max(0, tokens - taken);
      last = now;
      const budget = await store.read().catch(() => undefined);
      const rate = currentRate(budget, now, rule);
      const ahead = budget ? Math.max(0, budget.tat - now) / 1000 : 0;
      const paused = budget?.pausedUntil ? Math.max(0, budget.pausedUntil - now) / 1000 : 0;
      const givenRate = (quota.writesPerWindow * 1000) / quota.windowMs;
      options.log(
        `trace t=${((now - options.started) / 1000).toFixed(0)} budget=${rate.toFixed(1)}/s ` +
          `booked=${ahead.toFixed(1)}s paused=${paused.toFixed(1)}s | graph=${givenRate}/s ` +
          `took=${taken} 429=${throttled} used=${(1 - tokens / quota.writesPerWindow).toFixed(2)}`,
      );
    })();
  }, 1000);
  return () => clearInterval(timer);
}
