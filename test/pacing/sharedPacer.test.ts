import { ErrorCodes, OffboardingError } from '../../shared/core/errors';
import { bookWrites, type BudgetParams } from '../../shared/pacing/budget';
import {
  MemoryBudgetStore,
  SharedWritePacer,
  createWritePacer,
  reportingThrottles,
  type BudgetStore,
} from '../../shared/pacing/index';
import type { Directory } from '../../shared/core/ports';
import { virtualPacer as virtualPacerOn, worstOverGrant, type StartedWrites } from './support';

const PARAMS: BudgetParams = { ratePerSecond: 20, capacity: 240, departureReserve: 200 };
const T0 = 1_700_000_000_000;

/** A pacer on a virtual clock (support.ts) with this file's bucket, from T0. */
function virtualPacer(
  store: BudgetStore,
  options: Partial<Parameters<typeof virtualPacerOn>[1]> = {},
) {
  return virtualPacerOn(store, { params: PARAMS, clock: { now: T0 }, ...options });
}

async function settleAll(promises: Promise<unknown>[]) {
  return Promise.allSettled(promises);
}

function deferredOf(result: PromiseSettledResult<unknown>): OffboardingError | undefined {
  if (result.status !== 'rejected') return undefined;
  const reason: unknown = result.reason;
  return reason instanceof OffboardingError && reason.code === ErrorCodes.Deferred
    ? reason
    : undefined;
}

describe('the write budget (GCRA bucket)', () => {
  it('lets the wave burst its headroom, then spaces writes at the rate', () => {
    const requests = Array.from({ length: 45 }, () => ({ lane: 'wave' as const, writes: 1 }));
    const { tat, results } = bookWrites(PARAMS, 0, T0, requests, 10_000);
    const starts = results.map((r) => (r.granted ? r.startAt - T0 : NaN));
    // 240 - 200 = 40 writes of headroom start at once; the next ones 50 ms apart (20/s).
    expect(starts.slice(0, 40)).toEqual(Array<number>(40).fill(0));
    expect(starts.slice(40)).toEqual([50, 100, 150, 200, 250]);
    expect(tat).toBe(T0 + 45 * 50);
  });

  it('refuses the wave past its wait bound, and every later request of the batch', () => {
    const requests = Array.from({ length: 60 }, () => ({ lane: 'wave' as const, writes: 1 }));
    const { tat, results } = bookWrites(PARAMS, 0, T0, requests, 500);
    const granted = results.filter((r) => r.granted).length;
    // 40 at once, then 10 more within 500 ms.
    expect(granted).toBe(50);
    expect(results.slice(50).every((r) => !r.granted && r.startAt > T0 + 500)).toBe(true);
    expect(tat).toBe(T0 + 50 * 50);
  });

  it('lets a departure start at once while the wave has booked its own slots ahead', () => {
    // The wave's last booked write starts 4.4 s ahead (128 invocations, one write each).
    const tat = T0 + 128 * 50;
    const { results } = bookWrites(
      PARAMS,
      tat,
      T0,
      Array.from({ length: 50 }, () => ({ lane: 'departure' as const, writes: 2 })),
      30_000,
    );
    // 50 departures of 2 writes fit in the reserve: none waits.
    expect(results.every((r) => r.granted && r.startAt === T0)).toBe(true);
    // The wave behind them now waits for the 100 writes the departures took.
    const next = bookWrites(PARAMS, tat + 100 * 50, T0, [{ lane: 'wave', writes: 1 }], 60_000);
    expect(next.results[0]).toEqual({ granted: true, startAt: T0 + 4_400 + 50 + 100 * 50 });
  });

  it('never grants more than the bucket allows, whatever the mix of lanes and timing', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const params: BudgetParams = { ratePerSecond: 20, capacity: 30, departureReserve: 20 };
    let tat = 0;
    let now = T0;
    const starts: StartedWrites[] = [];
    for (let step = 0; step < 2_000; step++) {
      now += Math.floor(random() * 120);
      const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, () => ({
        lane: random() < 0.2 ? ('departure' as const) : ('wave' as const),
        writes: 1 + Math.floor(random() * 3),
      }));
      const booked = bookWrites(params, tat, now, batch, random() * 5_000);
      tat = booked.tat;
      booked.results.forEach((result, i) => {
        if (result.granted) starts.push({ at: result.startAt, writes: batch[i]?.writes ?? 0 });
      });
    }
    expect(starts.length).toBeGreaterThan(700);
    expect(worstOverGrant(starts, params)).toBeLessThanOrEqual(1e-9);
    // And it is tight: the same schedule with one write more would break it.
    const last = starts.at(-1);
    expect(
      worstOverGrant([...starts, { at: last?.at ?? 0, writes: params.capacity }], params),
    ).toBeGreaterThan(0);
  });
});

describe('SharedWritePacer (in-memory store)', () => {
  it('books concurrent reservations in few store round-trips and waits in process', async () => {
    const store = new MemoryBudgetStore();
    const { pacer, reserve, starts } = virtualPacer(store);
    await Promise.all(Array.from({ length: 100 }, () => reserve('wave', 1)));
    const stats = pacer.stats();
    expect(stats).toMatchObject({ reservations: 100, granted: 100, deferred: 0 });
    // The first call books alone, the 99 that queued behind it in one batch.
    expect(store.writes).toBe(2);
    expect(Math.max(...starts.map((s) => s.at)) - T0).toBe((100 - 40) * 50);
  });

  it('leases wave slots in blocks: spare slots serve later reservations without the store', async () => {
    const store = new MemoryBudgetStore();
    const clock = { now: T0 };
    const starts: number[] = [];
    const pacer = new SharedWritePacer({
      params: PARAMS,
      store,
      maxWaitMs: 30_000,
      waveLeaseWrites: 50,
      onGranted: ({ startAt }) => starts.push(startAt),
      now: () => clock.now,
      sleep: () => Promise.resolve(),
    });
    for (let i = 0; i < 45; i++) await pacer.reserve('wave', 1);
    // One booking of 50 slots served all 45: the same slots as booking one by one.
    expect(store.writes).toBe(1);
    expect(starts.map((at) => at - T0)).toEqual([
      ...Array<number>(40).fill(0),
      50,
      100,
      150,
      200,
      250,
    ]);
    // A departure never uses the wave's leased slots, and sees them as booked.
    await pacer.reserve('departure', 1);
    expect(store.writes).toBe(2);
    // A busy process may come back to a spare slot up to a second late: it is still used...
    clock.now += 700;
    await pacer.reserve('wave', 1);
    expect(store.writes).toBe(2);
    expect(starts.at(-1)).toBe(T0 + 300);
    // ...later than that the 4 left (350-500 ms) are given up, and the next wave books anew.
    clock.now += 1_300;
    await pacer.reserve('wave', 1);
    expect(pacer.stats()).toMatchObject({ wastedSlots: 4, granted: 48 });
    expect(store.writes).toBe(3);
    expect(starts.at(-1)).toBe(T0 + 2_000);
  });

  it('defers the wave beyond its wait bound with a Retry-After, booking nothing for it', async () => {
    const store = new MemoryBudgetStore();
    const { pacer } = virtualPacer(store);
    // The wave may wait at most 3/4 of the departure reserve's worth: 150 writes = 7.5 s.
    const results = await settleAll(Array.from({ length: 200 }, () => pacer.reserve('wave', 1)));
    const deferred = results.map(deferredOf).filter((e) => e !== undefined);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(40 + 150);
    expect(deferred).toHaveLength(10);
    expect(deferred[0]).toMatchObject({ retryable: true, retryAfterSeconds: 8 });
    expect((await store.read())?.tat).toBe(T0 + 190 * 50);
  });

  describe('with a hold for the wave (waveHoldMs)', () => {
    /**
     * A discrete-event clock: sleeps end in the order of their deadlines, and time moves to the
     * next deadline only once everything else has settled.
     */
    function holdingPacer(waveHoldMs: number) {
      const clock = { now: T0 };
      const timers: Array<{ at: number; resolve: () => void }> = [];
      const starts: Array<StartedWrites & { bookedBy: number }> = [];
      const pacer = new SharedWritePacer({
        params: PARAMS,
        store: new MemoryBudgetStore(),
        maxWaitMs: 30_000,
        waveHoldMs,
        onGranted: ({ writes, startAt }) =>
          starts.push({ at: startAt, writes, bookedBy: clock.now }),
        now: () => clock.now,
        sleep: (ms) => new Promise((resolve) => timers.push({ at: clock.now + ms, resolve })),
        random: () => 0.5,
      });
      async function run<T>(work: Promise<T>): Promise<T> {
        let done = false;
        void work.finally(() => (done = true));
        while (!done) {
          for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
          timers.sort((a, b) => a.at - b.at);
          const next = timers.shift();
          if (next === undefined) continue;
          clock.now = Math.max(clock.now, next.at);
          next.resolve();
        }
        return work;
      }
      return { pacer, starts, clock, run };
    }

    it('keeps the overflow in process until its slot is within the bound, booking nothing ahead', async () => {
      const { pacer, starts, run } = holdingPacer(7_500);
      // The wave's bound is 7.5 s (190 slots); the 10 over it wait unbooked instead of deferring.
      const results = await run(
        settleAll(Array.from({ length: 200 }, () => pacer.reserve('wave', 1))),
      );
      expect(results.map(deferredOf).filter((e) => e !== undefined)).toEqual([]);
      expect(pacer.stats()).toMatchObject({ granted: 200, deferred: 0 });
      expect(pacer.stats().held).toBeGreaterThan(0);
      // Slots back to back at the rate, the headroom first: no gap, no over-grant...
      expect(Math.max(...starts.map((s) => s.at))).toBe(T0 + (200 - 40) * 50);
      expect(worstOverGrant(starts, PARAMS)).toBeLessThanOrEqual(1e-6);
      // ...and no slot was booked further ahead than the bound when it was booked.
      expect(Math.max(...starts.map((s) => s.at - s.bookedBy))).toBeLessThanOrEqual(7_500);
    });

    it('defers what the hold did not bring within reach once the hold is over', async () => {
      const { pacer, clock, run } = holdingPacer(1_000);
      // 190 booked up to 7.5 s; the 50 over it hold; after 1 s, 20 more slots are within reach:
      // those are booked and the other 30 deferred, the hold being over.
      const results = await run(
        settleAll(Array.from({ length: 240 }, () => pacer.reserve('wave', 1))),
      );
      const deferred = results.map(deferredOf).filter((e) => e !== undefined);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(210);
      expect(deferred).toHaveLength(30);
      expect(deferred[0]?.retryAfterSeconds).toBe(Math.ceil((211 - 40) * 0.05 - 1));
      expect(clock.now - T0).toBeLessThanOrEqual(1_000 + 7_500);
      expect(pacer.stats().held).toBe(50);
      // A hold too short to bring any of them within reach defers them at once.
      const short = holdingPacer(10);
      const shortResults = await short.run(
        settleAll(Array.from({ length: 240 }, () => short.pacer.reserve('wave', 1))),
      );
      expect(shortResults.map(deferredOf).filter((e) => e !== undefined)).toHaveLength(50);
      expect(short.pacer.stats().held).toBe(0);
      // Without a hold the same reservations defer everything past the bound (the default).
      const { pacer: plain } = virtualPacer(new MemoryBudgetStore());
      const plainResults = await settleAll(
        Array.from({ length: 240 }, () => plain.reserve('wave', 1)),
      );
      expect(plainResults.map(deferredOf).filter((e) => e !== undefined)).toHaveLength(50);
    });
  });

  it('gives departures the reserve at once during a wave, then makes the wave wait for it', async () => {
    const { reserve, starts } = virtualPacer(new MemoryBudgetStore());
    // 128 invocations (16 instances x 8) each wait for one write: booked 4.4 s ahead.
    await Promise.all(Array.from({ length: 128 }, () => reserve('wave', 1)));
    expect(Math.max(...starts.map((s) => s.at))).toBe(T0 + (128 - 40) * 50);
    await Promise.all(Array.from({ length: 50 }, () => reserve('departure', 2)));
    const departures = starts.filter((s) => s.lane === 'departure');
    expect(departures).toHaveLength(50);
    expect(departures.every((s) => s.at === T0)).toBe(true);
    await new Promise((resolve) => setImmediate(resolve)); // their bookings are stored
    // The wave yields the 100 writes: its next slot is 5 s later, past its wait bound.
    await expect(reserve('wave', 1)).rejects.toMatchObject({
      code: ErrorCodes.Deferred,
      retryAfterSeconds: Math.ceil((128 - 40 + 1 + 100) * 0.05),
    });
  });

  it('lets a departure go before its booking is stored when the budget it saw has room', async () => {
    const store = new MemoryBudgetStore();
    const { pacer, reserve, clock } = virtualPacer(store);
    await reserve('wave', 1); // The instance has now seen the budget.
    const writesBefore = store.writes;
    let settled = false;
    const departure = reserve('departure', 2).then(() => (settled = true));
    // Granted in the same tick, before any store call resolved...
    await Promise.resolve();
    expect(settled).toBe(true);
    await departure;
    // ...and still booked, so every instance counts its two writes.
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.writes).toBe(writesBefore + 1);
    expect((await store.read())?.tat).toBe(T0 + 3 * 50);
    expect(pacer.stats()).toMatchObject({ grantedAtOnce: 1, granted: 2 });
    // A stale view is not trusted: after 11 s the departure books first.
    clock.now += 11_000;
    await reserve('departure', 1);
    expect(pacer.stats().grantedAtOnce).toBe(1);
  });

  it('lets departures go at once even when the wave has booked as far ahead as it may', async () => {
    const store = new MemoryBudgetStore();
    const { pacer, reserve } = virtualPacer(store);
    // 200 wave events: 190 booked up to the wave's 7.5 s bound, 10 deferred.
    await settleAll(Array.from({ length: 200 }, () => reserve('wave', 1)));
    const departures = Array.from({ length: 10 }, () => reserve('departure', 2));
    await Promise.resolve();
    expect(pacer.stats().grantedAtOnce).toBe(10);
    await Promise.all(departures);
    await new Promise((resolve) => setImmediate(resolve));
    // Still booked behind: the wave's next slot moved by their 20 writes.
    expect((await store.read())?.tat).toBe(T0 + (190 + 20) * 50);
  });

  it('pauses every lane for Graph Retry-After, deferring what would wait too long', async () => {
    const store = new MemoryBudgetStore();
    const { pacer, reserve, starts } = virtualPacer(store, { maxWaitMs: 30_000 });
    pacer.reportThrottled(12);
    await reserve('departure', 1);
    // Nothing before the pause ends, and the bucket refills from there.
    expect(starts[0]?.at).toBeGreaterThanOrEqual(T0 + 12_000);
    expect(starts[0]?.at).toBeLessThanOrEqual(T0 + 12_050);
    // The wave may wait 5 s at most: deferred, asked to come back after the pause.
    await expect(pacer.reserve('wave', 1)).rejects.toMatchObject({
      code: ErrorCodes.Deferred,
      retryAfterSeconds: expect.any(Number) as number,
    });
    // A second instance on the same store learned it from the store, not from Graph.
    const other = virtualPacer(store);
    await other.reserve('departure', 1);
    expect(other.starts[0]?.at).toBeGreaterThanOrEqual(T0 + 12_000);
  });

  it('lets departures through and defers the wave when the store fails', async () => {
    const failing: BudgetStore = {
      read: () => Promise.reject(new Error('storage down')),
      write: () => Promise.reject(new Error('storage down')),
    };
    const { pacer } = virtualPacer(failing);
    await expect(pacer.reserve('departure', 2)).resolves.toBeUndefined();
    await expect(pacer.reserve('wave', 1)).rejects.toMatchObject({
      code: ErrorCodes.Deferred,
      retryAfterSeconds: 10,
    });
    expect(pacer.stats().storeFailures).toBe(2);
  });

  it('lets a departure go when the store does not answer within 2 s; the wave keeps waiting', async () => {
    jest.useFakeTimers();
    try {
      const hanging: BudgetStore = {
        read: () => new Promise(() => undefined),
        write: () => new Promise(() => undefined),
      };
      const pacer = new SharedWritePacer({ params: PARAMS, store: hanging, maxWaitMs: 30_000 });
      let departed = false;
      let waveDone = false;
      void pacer.reserve('departure', 2).then(() => (departed = true));
      void pacer.reserve('wave', 1).finally(() => (waveDone = true));
      await jest.advanceTimersByTimeAsync(1_900);
      expect(departed).toBe(false);
      await jest.advanceTimersByTimeAsync(200);
      expect(departed).toBe(true);
      expect(waveDone).toBe(false);
      expect(pacer.stats()).toMatchObject({ grantedUnbooked: 1, granted: 1 });
    } finally {
      jest.useRealTimers();
    }
  });

  it('holds a departure for its booked slot however long the store took to say so', async () => {
    jest.useFakeTimers({ now: T0 });
    try {
      const pacer = new SharedWritePacer({
        params: PARAMS,
        store: new MemoryBudgetStore(),
        maxWaitMs: 30_000,
      });
      pacer.reportThrottled(5); // Graph said: 5 s.
      let departed = false;
      void pacer.reserve('departure', 1).then(() => (departed = true));
      await jest.advanceTimersByTimeAsync(4_900);
      expect(departed).toBe(false);
      await jest.advanceTimersByTimeAsync(200);
      expect(departed).toBe(true);
      expect(pacer.stats().grantedUnbooked).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });

  it('shares one budget between instances without over-granting', async () => {
    const store = new MemoryBudgetStore();
    const clock = { now: T0 };
    const params: BudgetParams = { ratePerSecond: 20, capacity: 30, departureReserve: 10 };
    const instances = Array.from({ length: 4 }, () =>
      virtualPacer(store, { params, maxWaitMs: 600_000, waveMaxWaitMs: 600_000, clock }),
    );
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        instances.flatMap((instance, i) =>
          Array.from({ length: 5 }, (_, j) =>
            instance.reserve((i + j) % 3 === 0 ? 'departure' : 'wave', 1 + (j % 2)),
          ),
        ),
      );
      clock.now += 300;
    }
    const starts = instances.flatMap((i) => i.starts);
    expect(starts).toHaveLength(400);
    expect(worstOverGrant(starts, params)).toBeLessThanOrEqual(1e-9);
    expect(store.conflicts).toBeGreaterThan(0);
  });

  it('is off when the rate is 0, and a static share divides the budget', async () => {
    const off = createWritePacer({
      settings: {
        writesPerSecond: 0,
        burstWrites: 1,
        departureReserveWrites: 0,
        maxWaitSeconds: 1,
      },
      store: { kind: 'staticShare', instances: 1 },
    });
    await expect(off.reserve('wave', 1_000)).resolves.toBeUndefined();
    const share = createWritePacer({
      settings: {
        writesPerSecond: 20,
        burstWrites: 240,
        departureReserveWrites: 200,
        maxWaitSeconds: 7,
      },
      store: { kind: 'staticShare', instances: 40 },
    });
    // 240 / 40 = 6 writes of bucket, 1 of them for the wave, 0.5 writes/s. The first reservation
    // leases 4 slots (0, 2, 4, 6 s); 4 more writes would start 8 s from now, past the wave's
    // 7 s bound (the whole wait allowed: nothing left to hold for).
    await share.reserve('wave', 1);
    await expect(share.reserve('wave', 4)).rejects.toMatchObject({ code: ErrorCodes.Deferred });
  });
});

describe('reportingThrottles', () => {
  it('reports a 429 Retry-After to the budget and passes the error on', async () => {
    const throttled = new OffboardingError(ErrorCodes.Throttled, 'Graph 429', {
      retryable: true,
      retryAfterSeconds: 17,
    });
    const notFound = new OffboardingError(ErrorCodes.UserNotFound, 'Graph 404', {
      retryable: false,
    });
    const directory: Directory = {
      getUser: () => Promise.reject(notFound),
      revokeSignInSessions: () => Promise.reject(throttled),
      disableAccount: () => Promise.resolve({ requestId: 'r1' }),
      enableAccount: () => Promise.reject(throttled),
      resetPassword: () => Promise.reject(throttled),
      countEnabledUsers: () => Promise.resolve(1000),
    };
    const reported: number[] = [];
    const wrapped = reportingThrottles(directory, {
      reportThrottled: (seconds) => reported.push(seconds),
      reportUsage: () => undefined,
    });
    await expect(wrapped.revokeSignInSessions('u')).rejects.toBe(throttled);
    await expect(wrapped.getUser({ kind: 'objectId', value: 'u' } as never)).rejects.toBe(notFound);
    await expect(wrapped.disableAccount('u')).resolves.toEqual({ requestId: 'r1' });
    await expect(wrapped.enableAccount('u')).rejects.toBe(throttled);
    expect(reported).toEqual([17, 17]);
  });
});
