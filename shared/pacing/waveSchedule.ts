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
  const msPerEvent = 1000 / eventsPerSecond;
  const origin = start.getTime();
  const enqueueAt = Array.from({ length: events }, (_, i) => {
    // Event i may start once i events' worth of budget has passed; batches round that down
    // (after rounding away floating-point dust, so a batch never gets one event too many).
    const due = Math.round(i * msPerEvent * 1000) / 1000;
    return new Date(origin + Math.floor(due / batchMs) * batchMs);
  });
  return {
    enqueueAt,
    finishesAt: new Date(origin + Math.ceil(events * msPerEvent)),
    eventsPerSecond,
  };
}
