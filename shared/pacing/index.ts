import type { TableClient } from '@azure/data-tables';
import type { BudgetParams } from './budget';
import { MemoryBudgetStore, type BudgetStore } from './budgetStore';
import { unpaced, type WritePacer } from './pacer';
import {
  SharedWritePacer,
  waveMaxWaitMs,
  type PacerStats,
  type ThrottleFeedback,
} from './sharedPacer';
import { TableBudgetStore } from './tableBudgetStore';

export { unpaced, type Lane, type WritePacer } from './pacer';
export { SharedWritePacer, type PacerStats, type ThrottleFeedback } from './sharedPacer';
export { MemoryBudgetStore, type BudgetStore } from './budgetStore';
export { TableBudgetStore } from './tableBudgetStore';
export { reportingThrottles } from './throttleReporting';
export { planWaveSchedule, type WavePlan, type WavePlanInput } from './waveSchedule';

/** The pacing settings (see the report for their names and defaults in SETTINGS). */
export interface PacingSettings {
  /** PACING_WRITES_PER_SECOND: the app's Graph write budget; 0 turns pacing off. Default 20. */
  writesPerSecond: number;
  /** PACING_BURST_WRITES: bucket size, departure reserve included. Default 440. */
  burstWrites: number;
  /** PACING_DEPARTURE_RESERVE_WRITES: part of the bucket only departures use. Default 400. */
  departureReserveWrites: number;
  /** PACING_MAX_WAIT_SECONDS: longest in-process wait for a slot before deferring. Default 30. */
  maxWaitSeconds: number;
  /** Wave slots leased per storage round-trip (not a setting; default 8). */
  waveLeaseWrites?: number;
  /**
   * Whether a wave event with no slot within its bound waits in process, unbooked, for the rest
   * of maxWaitSeconds before it is parked (SharedPacerOptions.waveHoldMs). Not a setting; on by
   * default: at 40 instances x 8 invocations (more than the wave's bound holds) it took the
   * benchmark's wave from 1.07 to 1.04 x ideal and its parked copies from 8,445 to 75; at 16
   * instances it never acts (docs/benchmarks.md).
   */
  holdWave?: boolean;
}

/**
 * Graph allows 3,000 writes per 150 s: 20/s with a 3,000-write burst. The bucket stays far below
 * that burst (440), so a wave never spends Graph's burst and departures always find room: 400
 * writes (200 departures of disable + revoke) reserved for them, 40 of headroom for the wave.
 */
export const DEFAULT_PACING: PacingSettings = {
  writesPerSecond: 20,
  burstWrites: 440,
  departureReserveWrites: 400,
  maxWaitSeconds: 30,
  waveLeaseWrites: 8,
  holdWave: true,
};

export type PacingStoreOption =
  /** Design (a), the default: one budget for all instances in Table Storage. */
  | { kind: 'table'; table: TableClient }
  /** Any BudgetStore (tests). */
  | { kind: 'store'; store: BudgetStore }
  /**
   * Design (b), measured and not chosen: each instance paces itself to 1/instances of the budget
   * in memory. Right only while exactly `instances` instances run.
   */
  | { kind: 'staticShare'; instances: number };

export interface WritePacerOptions {
  settings: PacingSettings;
  store: PacingStoreOption;
}

export type PacerWithFeedback = WritePacer &
  ThrottleFeedback & {
    /** Counters for the benchmark and diagnostics (absent when pacing is off). */
    stats?(): PacerStats;
  };

const noFeedback: ThrottleFeedback = {
  reportThrottled: () => undefined,
  reportUsage: () => undefined,
};

/**
 * The one factory for the app's Graph write pacer. Wire it once per process (createRuntime), hand
 * `reserve` to the use case and the same object, as ThrottleFeedback, to `reportingThrottles`
 * around the Directory.
 */
export function createWritePacer(options: WritePacerOptions): PacerWithFeedback {
  const { settings, store } = options;
  if (!(settings.writesPerSecond > 0)) return { ...unpaced, ...noFeedback };
  const share = store.kind === 'staticShare' ? Math.max(1, store.instances) : 1;
  const params: BudgetParams = {
    ratePerSecond: settings.writesPerSecond / share,
    capacity: Math.max(1, settings.burstWrites / share),
    departureReserve: settings.departureReserveWrites / share,
  };
  const budgetStore =
    store.kind === 'table'
      ? new TableBudgetStore(store.table)
      : store.kind === 'store'
        ? store.store
        : new MemoryBudgetStore();
  const maxWaitMs = settings.maxWaitSeconds * 1000;
  return new SharedWritePacer({
    params,
    store: budgetStore,
    maxWaitMs,
    // When on, a wave event waits in process for maxWaitSeconds in all: unbooked while no slot
    // is within the wave's own bound, then booked (see SharedPacerOptions.waveHoldMs).
    waveHoldMs:
      (settings.holdWave ?? DEFAULT_PACING.holdWave)
        ? Math.max(0, maxWaitMs - waveMaxWaitMs(params, maxWaitMs))
        : 0,
    waveLeaseWrites: settings.waveLeaseWrites ?? DEFAULT_PACING.waveLeaseWrites ?? 1,
  });
}
