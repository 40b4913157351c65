import { planWaveSchedule } from '../../shared/pacing/index';

describe('planWaveSchedule', () => {
  const start = new Date('2026-12-01T08:00:00.000Z');

  it('spreads a 50,000-user MFA wave over the quota left after the departure share', () => {
    const plan = planWaveSchedule({
      events: 50_000,
      writesPerEvent: 1,
      writesPerSecond: 20,
      departureShare: 0.05,
      start,
    });
    expect(plan.eventsPerSecond).toBeCloseTo(19, 10);
    expect(plan.enqueueAt).toHaveLength(50_000);
    expect(plan.enqueueAt[0]).toEqual(start);
    // 50,000 / 19 per second = 2,631.6 s: the wave finishes 43 min 52 s after it starts.
    expect(plan.finishesAt.getTime() - start.getTime()).toBe(2_631_579);
    // Whole-second batches of 19 (the last one partial), never out of order.
    const perSecond = new Map<number, number>();
    let previous = 0;
    for (const at of plan.enqueueAt) {
      expect(at.getTime()).toBeGreaterThanOrEqual(previous);
      previous = at.getTime();
      perSecond.set(previous, (perSecond.get(previous) ?? 0) + 1);
    }
    expect(Math.max(...perSecond.values())).toBe(19);
    expect(perSecond.size).toBe(Math.ceil(50_000 / 19));
  });

  it('slows down for events that make several writes, and plans nothing for no events', () => {
    const plan = planWaveSchedule({
      events: 10,
      writesPerEvent: 2,
      writesPerSecond: 20,
      departureShare: 0,
      start,
      batchMs: 100,
    });
    expect(plan.enqueueAt.map((d) => d.getTime() - start.getTime())).toEqual([
      0, 100, 200, 300, 400, 500, 600, 700, 800, 900,
    ]);
    expect(plan.finishesAt.getTime() - start.getTime()).toBe(1_000);
    const empty = planWaveSchedule({
      events: 0,
      writesPerEvent: 1,
      writesPerSecond: 20,
      departureShare: 0.05,
      start,
    });
    expect(empty).toMatchObject({ enqueueAt: [], finishesAt: start });
  });

  it('rejects inputs that would plan nonsense', () => {
    const base = { events: 1, writesPerEvent: 1, writesPerSecond: 20, departureShare: 0, start };
    expect(() => planWaveSchedule({ ...base, departureShare: 1 })).toThrow(/departureShare/);
    expect(() => planWaveSchedule({ ...base, writesPerSecond: 0 })).toThrow(/writesPerSecond/);
    expect(() => planWaveSchedule({ ...base, events: 1.5 })).toThrow(/events/);
  });
});
