/**
 * Source pacing: when each event of a wave should be enqueued (Service Bus scheduled enqueue) so
 * that the wave arrives no faster than the app may write, leaving a share of the quota free for
 * departures. The app paces itself anyway; this keeps the queue short, so a wave does not sit in
 * the queue for hours and a departure is never behind a long queue of scheduled retries.
 */
export interface WavePlanInput {
  events: number;
  /** Graph writes one event makes (mfa.enabled: 1; employee.leaving: 1-3). */
  writesPerEvent: number;
  /** The app's write budget, writes per second (Graph: 20). */
  writesPerSecond: number;
  /** Share of the budget left to departures while the wave runs, 0 <= share < 1. */
  departureShare: number;
  start: Date;
  /** Events enqueued together share a time: one scheduled batch per this many ms. Default 1000. */
  batchMs?: number;
}

export interface WavePlan {
  /** Scheduled enqueue time of each event, in input order (non-decreasing). */
  enqueueAt: Date[];
  /** When the last event can have been processed at the planned rate. */
  finishesAt: Date;
  /** Events per second the plan sends. */
  eventsPerSecond: number;
}

export function planWaveSchedule(input: WavePlanInput): WavePlan {
  const { events, writesPerEvent, writesPerSecond, departureShare, start } = input;
  const batchMs = input.batchMs ?? 1000;
  if (!Number.isInteger(events) || events < 0) throw new RangeError('events must be a count');
  if (!(writesPerEvent > 0)) throw new RangeError('writesPerEvent must be positive');
  if (!(writesPerSecond > 0)) throw new RangeError('writesPerSecond must be positive');
  if (!(departureShare >= 0 && departureShare < 1)) {
    throw new RangeError('departureShare must be at least 0 and below 1');
  }
  if (!(batchMs > 0)) throw new RangeError('batchMs must be positive');
  const eventsPerSecond = (writesPerSecond * (1 - departureShare)) / writesPerEvent;
  return {
    enqueueAt: Array.from({ length: events }, (_, i) =>
      pacedSlot(i, { eventsPerSecond, start, batchMs }),
    ),
    finishesAt: pacedFinish(events, { eventsPerSecond, start }),
    eventsPerSecond,
  };
}

/**
 * When event `index` (from 0) of a send paced at `eventsPerSecond` is due: once `index` events'
 * worth of time has passed, rounded down to its batch (after rounding away floating-point dust, so
 * a batch never gets one event too many). For sends that learn their size as they go (dlq replay).
 */
export function pacedSlot(
  index: number,
  pace: { eventsPerSecond: number; start: Date; batchMs?: number },
): Date {
  const batchMs = pace.batchMs ?? 1000;
  if (!(pace.eventsPerSecond > 0)) throw new RangeError('eventsPerSecond must be positive');
  const due = Math.round(((index * 1000) / pace.eventsPerSecond) * 1000) / 1000;
  return new Date(pace.start.getTime() + Math.floor(due / batchMs) * batchMs);
}

/** When `events` events paced at `eventsPerSecond` from `start` can have been processed. */
export function pacedFinish(events: number, pace: { eventsPerSecond: number; start: Date }): Date {
  return new Date(pace.start.getTime() + Math.ceil((events * 1000) / pace.eventsPerSecond));
}
