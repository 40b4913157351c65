import { ErrorCodes, OffboardingError } from '../core/errors';
import {
  atRate,
  currentRate,
  defaultRateRule,
  onThrottled,
  onUsage,
  type RateRule,
} from './adaptiveRate';
import { bookWrites, validateBudgetParams, type BudgetParams, type BookingResult } from './budget';
import {
  budgetState,
  sameBudget,
  type BudgetState,
  type BudgetStore,
  type StoredBudget,
} from './budgetStore';
import type { Lane, WritePacer } from './pacer';

/** What Graph tells us about the budget, reported by the Directory decorator. */
export interface ThrottleFeedback {
  /** Graph answered 429 with this Retry-After: nobody writes before it has passed. */
  reportThrottled(retryAfterSeconds: number): void;
  /** Graph's x-ms-throttle-limit-percentage (0.8 and up). */
  reportUsage(usedFraction: number): void;
}

export interface SharedPacerOptions {
  /** The bucket at the configured (highest) rate. */
  params: BudgetParams;
  /** How the rate follows what Graph gives (default: defaultRateRule at params' rate). */
  rateRule?: RateRule;
  store: BudgetStore;
  /** Longest in-process wait for a slot (departures); past it the event is deferred. */
  maxWaitMs: number;
  /**
   * Longest in-process wait of a wave event. Default: three quarters of the departure reserve's
   * worth of time (and at most maxWaitMs), so the wave never books so far ahead that a burst of
   * departures of up to a quarter of the reserve has to wait: a departure's wait is at most
   * (wave wait + its burst's writes / rate - reserve / rate).
   */
  waveMaxWaitMs?: number;
  /**
   * How long a wave reservation that finds no slot within its wait bound may wait in process,
   * unbooked, for one to come within reach, before it is deferred (default 0: deferred at once).
   * With many invocations waiting (40 instances x 8 take 16 s of slots at 20/s, more than the
   * wave's 15 s bound) this keeps the overflow in process instead of parking it in the queue and
   * bringing it back after its slot passed. Nothing is booked while it waits, so the wave never
   * reaches further ahead and departures keep their reserve.
   */
  waveHoldMs?: number;
  /**
   * Wave slots booked per store round-trip at least (default 1): the spare ones serve this
   * instance's next reservations without a storage call. Fewer calls and ETag conflicts; a slot
   * not used by its time is given up.
   */
  waveLeaseWrites?: number;
  /** Conditional writes lost in a row before the store counts as failing. */
  maxConflicts?: number;
  /** How long the wave is deferred when the budget store cannot be used. */
  storeOutageDeferSeconds?: number;
  /** Called when a reservation is granted, with the time its writes may start (statistics). */
  onGranted?: (grant: { lane: Lane; writes: number; startAt: number }) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface PacerStats {
  reservations: number;
  granted: number;
  deferred: number;
  /** Sum of in-process waits, ms. */
  waitedMs: number;
  storeReads: number;
  storeWrites: number;
  storeConflicts: number;
  storeFailures: number;
  /** Leased slots whose time passed unused (quota given up). */
  wastedSlots: number;
  /** Departures granted from a fresh cached budget before their booking was stored. */
  grantedAtOnce: number;
  /** Departures that went ahead because the store was too slow to answer in time. */
  grantedUnbooked: number;
  /** Times a wave reservation with no slot in reach waited in process for one (waveHoldMs). */
  held: number;
  /** Wave writes booked before a lowering of the rate this instance learned of, booked again. */
  rebooked: number;
}

interface Pending {
  lane: Lane;
  writes: number;
  resolve: () => void;
  reject: (error: Error) => void;
  /** Already granted from the cached budget; only its booking remains to be stored. */
  granted?: boolean;
  /** Called once the store answered for this request (the slot is known, or it is refused). */
  onBooked?: () => void;
  /** When a held wave reservation began holding (see waveHoldMs). */
  holdingSince?: number;
}

const noop = () => undefined;

/**
 * A cached budget older than this is not trusted for granting departures before booking. The wave
 * never books further ahead than its wait bound, so in that time others can only have added
 * pauses and other departures, which the slack of half the reserve covers.
 */
const FRESH_CACHE_MS = 10_000;
/**
 * A leased slot may still be used this long after its time (a busy process came back to it late).
 * Late writes can add at most this much of the rate as a burst (20 writes at 20/s), which the
 * bucket's distance to Graph's own burst (3,000) absorbs; later than that the slot is given up.
 */
const LATE_SLOT_GRACE_MS = 1_000;
/**
 * A departure whose booking has not come back from the store by then goes ahead anyway (the
 * booking completes behind it): our bookkeeping never holds up removing someone's access.
 */
const DEPARTURE_BOOKING_TIMEOUT_MS = 2_000;

/**
 * A held wave reservation tries to book again after at least this long: by then a second of
 * slots has come within reach, and an instance's held reservations book together, so holding
 * costs each instance at most one store round-trip a second.
 */
const HOLD_RECHECK_MS = 1_000;

/**
 * A wave write waiting for its slot looks at the budget this often, reading it again unless this
 * instance read or wrote it within the last STALE_BUDGET_MS (one read per instance a second at
 * most, shared by every write waiting meanwhile).
 */
const WAVE_RECHECK_MS = 1_000;
const STALE_BUDGET_MS = 1_000;

function deferred(startAt: number, now: number, why: string): OffboardingError {
  const retryAfterSeconds = Math.max(1, Math.ceil((startAt - now) / 1000));
  return new OffboardingError(
    ErrorCodes.Deferred,
    `Graph write budget: ${why}; next room in about ${retryAfterSeconds} s.`,
    { retryable: true, retryAfterSeconds },
  );
}

/** The wave's wait bound: see SharedPacerOptions.waveMaxWaitMs. */
export function waveMaxWaitMs(params: BudgetParams, maxWaitMs: number, configured?: number) {
  const reserveMs = (params.departureReserve * 1000) / params.ratePerSecond;
  return Math.min(maxWaitMs, configured ?? (reserveMs * 3) / 4);
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The write budget shared by every instance through a {@link BudgetStore}. Reservations that
 * arrive while this instance is talking to the store wait for the next round-trip and are booked
 * together (one read and one conditional write per batch and lane), which keeps storage calls and
 * ETag conflicts low however many invocations run. A granted reservation waits in process until
 * its slot; one whose slot is further away than the lane's wait bound is deferred (OffboardingError
 * `Deferred` with `retryAfterSeconds`) and books nothing.
 */
export class SharedWritePacer implements WritePacer, ThrottleFeedback {
  private readonly params: BudgetParams;
  private readonly store: BudgetStore;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly maxWait: Record<Lane, number>;
  private readonly pending: Record<Lane, Pending[]> = { departure: [], wave: [] };
  private readonly flushing: Record<Lane, boolean> = { departure: false, wave: false };
  /** Start times of slots booked ahead and not yet given to a reservation (ascending). */
  private leased: Record<Lane, number[]> = { departure: [], wave: [] };
  /** The rate the leased slots were booked at (the latest lease's). */
  private leasedRate: Record<Lane, number> = { departure: 0, wave: 0 };
  /** The last budget this instance read or wrote: tried first, re-read after a lost race. */
  private cached: StoredBudget | undefined;
  private cachedAt = 0;
  /** Graph's Retry-After as seen by this instance (applies even before the store knows). */
  private pausedUntil = 0;
  /** The latest lowering of the rate this instance knows of: wave slots booked before it go back. */
  private loweredAt = 0;
  /** The read of the budget in flight for the wave writes waiting for their slots (refresh). */
  private refreshing: Promise<void> | undefined;
  private readonly rateRule: RateRule;
  private readonly statistics: PacerStats = {
    reservations: 0,
    granted: 0,
    deferred: 0,
    waitedMs: 0,
    storeReads: 0,
    storeWrites: 0,
    storeConflicts: 0,
    storeFailures: 0,
    wastedSlots: 0,
    grantedAtOnce: 0,
    grantedUnbooked: 0,
    held: 0,
    rebooked: 0,
  };

  constructor(private readonly options: SharedPacerOptions) {
    validateBudgetParams(options.params);
    this.params = options.params;
    this.rateRule = options.rateRule ?? defaultRateRule(options.params.ratePerSecond);
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.maxWait = {
      departure: options.maxWaitMs,
      wave: waveMaxWaitMs(options.params, options.maxWaitMs, options.waveMaxWaitMs),
    };
  }

  stats(): PacerStats {
    return { ...this.statistics };
  }

  reserve(lane: Lane, writes: number): Promise<void> {
    if (!(writes > 0)) return Promise.resolve();
    this.statistics.reservations += 1;
    if (lane === 'departure' && this.reserveHasRoom(writes)) {
      // Plenty of reserve even if other instances booked since we last looked: go now, and
      // book the writes in the store behind it so every instance counts them.
      this.statistics.granted += 1;
      this.statistics.grantedAtOnce += 1;
      this.options.onGranted?.({ lane, writes, startAt: this.now() });
      this.pending[lane].push({ lane, writes, resolve: noop, reject: noop, granted: true });
      void this.flush(lane);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const request: Pending = { lane, writes, resolve, reject };
      if (lane === 'departure') {
        let settled = false;
        const timer = setTimeout(() => {
          if (settled) return;
          settled = true;
          this.statistics.granted += 1;
          this.statistics.grantedUnbooked += 1;
          request.granted = true;
          resolve();
        }, DEPARTURE_BOOKING_TIMEOUT_MS);
        timer.unref?.();
        // The timeout is for a store that does not answer, not for a slot that is booked later.
        request.onBooked = () => clearTimeout(timer);
        request.resolve = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve();
        };
        request.reject = (error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        };
      }
      this.pending[lane].push(request);
      void this.flush(lane);
    });
  }

  /** The rate the budget paces at now, as this instance last saw it (diagnostics, benchmark). */
  currentRate(): number {
    return currentRate(this.cached, this.now(), this.rateRule);
  }

  reportThrottled(retryAfterSeconds: number): void {
    const until = this.now() + Math.max(0, retryAfterSeconds) * 1000;
    this.pausedUntil = Math.max(this.pausedUntil, until);
    void this.update((state, now) => onThrottled(state, now, until, this.params, this.rateRule));
  }

  reportUsage(usedFraction: number): void {
    void this.update((state, now) => onUsage(state, now, usedFraction, this.params, this.rateRule));
  }

  /** The bucket at the rate the shared budget paces at now. */
  private paramsAt(state: BudgetState, now: number): BudgetParams {
    return { ...this.params, ratePerSecond: currentRate(state, now, this.rateRule) };
  }

  private async flush(lane: Lane): Promise<void> {
    if (this.flushing[lane]) return;
    this.flushing[lane] = true;
    try {
      while (this.pending[lane].length > 0) {
        const batch = this.pending[lane].splice(0);
        await this.book(lane, batch);
      }
    } finally {
      this.flushing[lane] = false;
    }
  }

  /** One optimistic read-compute-write of the stored budget, retried on lost races. */
  private async commit<T>(
    compute: (state: BudgetState, now: number) => { state: BudgetState; result: T },
  ) {
    const maxConflicts = this.options.maxConflicts ?? 50;
    for (let conflicts = 0; ;) {
      let current = this.cached;
      if (current === undefined) {
        this.statistics.storeReads += 1;
        current = await this.store.read();
        if (current !== undefined) this.remember(current);
      }
      const now = this.now();
      const before: BudgetState = current === undefined ? { tat: 0 } : budgetState(current);
      const { state, result } = compute(before, now);
      if (current !== undefined && sameBudget(state, before)) return { result, now };
      this.statistics.storeWrites += 1;
      const etag = await this.store.write(state, current?.etag);
      if (etag !== undefined) {
        this.remember({ ...state, etag });
        return { result, now };
      }
      this.statistics.storeConflicts += 1;
      this.cached = undefined;
      conflicts += 1;
      if (conflicts > maxConflicts) throw new Error('the budget kept changing under us');
      // Spread the retries of instances that lost the same race.
      await this.sleep(this.random() * Math.min(100, 5 * conflicts));
    }
  }

  /** Reads the budget unless this instance saw it within STALE_BUDGET_MS; advisory. */
  private refresh(): Promise<void> {
    if (this.now() - this.cachedAt < STALE_BUDGET_MS) return Promise.resolve();
    this.refreshing ??= (async () => {
      try {
        this.statistics.storeReads += 1;
        const budget = await this.store.read();
        if (budget !== undefined) this.remember(budget);
      } catch {
        // The write goes at its slot: a store that cannot answer never holds up the wave here.
        this.statistics.storeFailures += 1;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private remember(budget: StoredBudget): void {
    this.cached = budget;
    this.cachedAt = this.now();
    this.pausedUntil = Math.max(this.pausedUntil, budget.pausedUntil ?? 0);
    if ((budget.loweredAt ?? 0) > this.loweredAt) {
      // The rate was lowered: the wave's slots leased at the old rate are given back.
      this.loweredAt = budget.loweredAt ?? 0;
      this.statistics.wastedSlots += this.leased.wave.length;
      this.leased.wave = [];
    }
  }

  /**
   * Whether a departure's writes can start now by the budget this instance saw within the last
   * FRESH_CACHE_MS, whatever others booked since: the wave cannot have booked beyond its own
   * reach (its wait bound plus its headroom), and other departures are allowed an eighth of the
   * reserve. A pause Graph ordered elsewhere is in the store, hence the freshness bound.
   */
  private reserveHasRoom(writes: number): boolean {
    const now = this.now();
    if (
      this.cached === undefined ||
      now - this.cachedAt > FRESH_CACHE_MS ||
      now < this.pausedUntil
    ) {
      return false;
    }
    const { capacity, departureReserve, ratePerSecond } = this.paramsAt(this.cached, now);
    const msPerWrite = 1000 / ratePerSecond;
    const waveReach = now + this.maxWait.wave + (capacity - departureReserve) * msPerWrite;
    const otherDepartures = departureReserve / 8;
    const { tat } = atRate(this.cached, now, ratePerSecond);
    const worst = Math.max(tat, waveReach) + (otherDepartures + writes) * msPerWrite;
    return worst - capacity * msPerWrite <= now;
  }

  private async book(lane: Lane, batch: Pending[]): Promise<void> {
    // 1. Slots this instance leased earlier and still holds, in order, while they last.
    const slots = this.leased[lane];
    const now = this.now();
    while (slots.length > 0 && (slots[0] ?? 0) < now - LATE_SLOT_GRACE_MS) {
      // A slot whose time passed unused is dropped: using it late could add up to a burst.
      slots.shift();
      this.statistics.wastedSlots += 1;
    }
    const rest: Pending[] = [];
    for (const request of batch) {
      if (request.granted) rest.push(request);
      else if (rest.length === 0 && slots.length >= request.writes) {
        const taken = slots.splice(0, request.writes);
        request.onBooked?.();
        void this.waitFor(request, taken.at(-1) ?? now, this.leasedRate[lane]);
      } else rest.push(request);
    }
    if (rest.length === 0) return;

    // 2. Book one slot per write for the rest, plus spare slots up to the lease block.
    const needed = rest.reduce((sum, request) => sum + request.writes, 0);
    const block = lane === 'wave' ? (this.options.waveLeaseWrites ?? 1) : 1;
    const slotRequests = Array.from({ length: Math.max(needed, block) }, () => ({
      lane,
      writes: 1,
    }));
    let results: BookingResult[];
    let bookedAt: number;
    let rising: boolean;
    let bookedRate: number;
    try {
      const committed = await this.commit((state, at) => {
        const params = this.paramsAt(state, at);
        const current = atRate(state, at, params.ratePerSecond);
        const booked = bookWrites(
          params,
          current.tat,
          at,
          slotRequests,
          this.maxWait[lane],
          state.pausedUntil,
        );
        return {
          state: { ...current, tat: booked.tat },
          result: { results: booked.results, rate: params.ratePerSecond },
        };
      });
      results = committed.result.results;
      bookedRate = committed.result.rate;
      rising = bookedRate < this.rateRule.maxPerSecond;
      bookedAt = committed.now;
    } catch {
      this.statistics.storeFailures += 1;
      this.cached = undefined;
      for (const request of rest) {
        request.onBooked?.();
        if (!request.granted) this.onStoreFailure(request);
      }
      return;
    }
    // Granted slots are a prefix (bookWrites keeps the order); a request needs all of its own.
    const granted = results.filter((r) => r.granted).map((r) => r.startAt);
    let next = 0;
    for (const request of rest) {
      if (request.granted) {
        // Went ahead already; its slots (granted or not) only keep the shared count right.
        next = Math.min(granted.length, next + request.writes);
        continue;
      }
      request.onBooked?.();
      if (granted.length - next >= request.writes) {
        next += request.writes;
        void this.waitFor(request, granted[next - 1] ?? bookedAt, bookedRate);
        continue;
      }
      const estimate = results[next + request.writes - 1]?.startAt ?? bookedAt;
      if (lane === 'wave' && this.hold(request, estimate, bookedAt)) continue;
      this.statistics.deferred += 1;
      // The estimate is at today's rate; while that rate is rising room comes sooner, so the
      // event comes back within the wave's bound rather than after a slot the rate overtook.
      const comeBack =
        lane === 'wave' && rising ? Math.min(estimate, bookedAt + this.maxWait.wave) : estimate;
      request.reject(deferred(comeBack, bookedAt, 'no room within the wait bound'));
    }
    // Spare slots wait here for the next reservations of this lane (booked at the rate the store
    // had just now: a lowering learned during this booking gave back only the slots before it).
    this.leased[lane].push(...granted.slice(next));
    this.leasedRate[lane] = bookedRate;
  }

  /**
   * A wave reservation with no slot within its wait bound waits in process, booking nothing, until
   * the slot it would get now comes within the bound, then tries again (others may have taken it:
   * it holds again), for waveHoldMs in all; false when that time cannot bring it within reach.
   */
  private hold(request: Pending, estimate: number, now: number): boolean {
    const holdMs = this.options.waveHoldMs ?? 0;
    const since = request.holdingSince ?? now;
    const inReachAt = estimate - this.maxWait.wave;
    if (!(holdMs > 0) || now >= since + holdMs || inReachAt > since + holdMs) return false;
    request.holdingSince = since;
    this.statistics.held += 1;
    const retryIn = Math.min(Math.max(HOLD_RECHECK_MS, inReachAt - now), since + holdMs - now);
    void this.sleep(retryIn).then(() => {
      this.pending.wave.push(request);
      void this.flush('wave');
    });
    return true;
  }

  private async waitFor(request: Pending, startAt: number, bookedRate: number): Promise<void> {
    const begun = this.now();
    let until = Math.max(startAt, this.pausedUntil);
    if (until - begun > this.maxWait[request.lane]) {
      this.statistics.deferred += 1;
      return request.reject(deferred(until, begun, 'Graph asked us to wait'));
    }
    const loweredAt = this.loweredAt;
    if (request.lane === 'departure') {
      if (until > begun) await this.sleep(until - begun);
    } else {
      // A wave write waits a second at a time and asks each time (through the store, one read
      // per instance a second) whether the rate changed: with all its invocations asleep on their
      // slots, an instance would otherwise learn of a lowering only from the answer to its next
      // write, after its next writes had gone at the old rate. Lowered: it books again (below).
      // Risen: its slot comes sooner, as the bucket's booked writes do (atRate).
      let rate = bookedRate;
      // Counted down by the steps slept as well as by the clock, so that it ends either way.
      let left = until - begun;
      while (left > 0) {
        const step = Math.min(left, WAVE_RECHECK_MS);
        await this.sleep(step);
        await this.refresh();
        if (this.loweredAt > loweredAt) break;
        const at = this.now();
        left = Math.min(left - step, until - at);
        const risen = this.currentRate();
        if (risen > rate && left > 0) {
          left = (left * rate) / risen;
          until = at + left;
          rate = risen;
        }
      }
    }
    // A departure may have gone ahead meanwhile (booking timeout); it is counted there.
    if (request.granted) return;
    if (
      request.lane === 'wave' &&
      (this.loweredAt > loweredAt || this.now() < this.pausedUntil - LATE_SLOT_GRACE_MS)
    ) {
      // Booked at a rate Graph has since refused: book again at the new one, from now.
      this.statistics.rebooked += 1;
      this.pending.wave.push(request);
      void this.flush('wave');
      return;
    }
    this.options.onGranted?.({ lane: request.lane, writes: request.writes, startAt: until });
    this.statistics.granted += 1;
    this.statistics.waitedMs += Math.max(0, until - begun);
    request.resolve();
  }

  /**
   * The store is down or contended beyond reason. A departure goes ahead unpaced (our bookkeeping
   * never holds up access removal; Graph's own 429 still protects the tenant); the wave waits.
   */
  private onStoreFailure(request: Pending): void {
    if (request.lane === 'departure') {
      this.statistics.granted += 1;
      request.resolve();
      return;
    }
    this.statistics.deferred += 1;
    const seconds = this.options.storeOutageDeferSeconds ?? 10;
    request.reject(
      new OffboardingError(
        ErrorCodes.Deferred,
        `Graph write budget unavailable (budget store failing); retry in ${seconds} s.`,
        { retryable: true, retryAfterSeconds: seconds },
      ),
    );
  }

  private async update(change: (state: BudgetState, now: number) => BudgetState): Promise<void> {
    try {
      await this.commit((state, now) => ({ state: change(state, now), result: undefined }));
    } catch {
      // Feedback is advisory: the local pause already applies; other instances learn from Graph.
      this.statistics.storeFailures += 1;
    }
  }
}
