import type { Lane } from './pacer';

/**
 * The write budget as a token bucket kept in one number: the "theoretical arrival time" of the
 * Generic Cell Rate Algorithm (GCRA). `tat` is the moment by which every write booked so far is
 * paid for at the refill rate; the bucket is full when `tat <= now`. One number means one small
 * entity in Table Storage, updated with optimistic concurrency, is the whole shared state.
 */
export interface BudgetParams {
  /** Sustained writes per second (Graph: 3,000 per 150 s = 20). */
  ratePerSecond: number;
  /** Bucket size in writes: the largest burst, departures' reserve included. */
  capacity: number;
  /**
   * Writes of the bucket only departures may use: the wave stops booking when fewer would be left,
   * so a departure arriving during a wave finds them at once (it preempts the wave's next slots).
   */
  departureReserve: number;
}

export interface Booking {
  lane: Lane;
  writes: number;
}

export type BookingResult =
  | { granted: true; startAt: number }
  | {
      granted: false;
      /** Earliest time the request could start, if booked now. */ startAt: number;
    };

export function validateBudgetParams(params: BudgetParams): void {
  const { ratePerSecond, capacity, departureReserve } = params;
  if (!(ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive');
  if (!(capacity >= 1)) throw new RangeError('capacity must be at least 1 write');
  if (!(departureReserve >= 0 && departureReserve < capacity)) {
    throw new RangeError('departureReserve must be at least 0 and below capacity');
  }
}

/** How far ahead of `tat` a lane may start: its share of the bucket, in milliseconds. */
function allowanceMs(params: BudgetParams, lane: Lane): number {
  const writes = lane === 'departure' ? params.capacity : params.capacity - params.departureReserve;
  return (writes * 1000) / params.ratePerSecond;
}

/**
 * Books a batch of requests, in order, against the bucket. Each granted request may start its
 * writes at `startAt` (never before `now`); a request whose start would be more than `maxWaitMs`
 * away is not booked (the caller defers it), and nor is any later one of the same batch, so the
 * order within a lane is kept. No request starts before `notBefore` (Graph's Retry-After), and
 * the bucket refills from then. Returns the new `tat` and one result per request.
 */
export function bookWrites(
  params: BudgetParams,
  tat: number,
  now: number,
  requests: readonly Booking[],
  maxWaitMs: number,
  notBefore = now,
): { tat: number; results: BookingResult[] } {
  const msPerWrite = 1000 / params.ratePerSecond;
  const from = Math.max(now, notBefore);
  let next = Math.max(tat, from);
  let refusing = false;
  const results: BookingResult[] = [];
  for (const request of requests) {
    // A request larger than the bucket could never conform; it is booked as a full bucket.
    const writes = Math.min(Math.max(0, request.writes), params.capacity);
    const booked = next + writes * msPerWrite;
    const startAt = Math.max(from, booked - allowanceMs(params, request.lane));
    if (refusing || startAt - now > maxWaitMs) {
      refusing = true;
      results.push({ granted: false, startAt });
      continue;
    }
    next = booked;
    results.push({ granted: true, startAt });
  }
  return { tat: Math.max(tat, next), results };
}
