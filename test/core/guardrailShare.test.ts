/**
 * The optional share-of-tenant limit: the lower of the two limits applies, the enabled-user count
 * is read at most once per cache period, and a count that cannot be read never admits an event.
 */
import { ErrorCodes, OffboardingError } from '../../shared/core/errors';
import { SharedGuardrail, effectiveLimit, type GuardrailLimits } from '../../shared/core/guardrail';
import { MemoryGuardrailStore } from '../support/fakes';

const LIMITS: GuardrailLimits = {
  employeeLeaving: { maxPerWindow: 50, windowMinutes: 60 },
  mfaEnabled: { maxPerWindow: 2000, windowMinutes: 60 },
  employeeReinstated: { maxPerWindow: 20, windowMinutes: 60 },
};
const T0 = Date.parse('2026-11-30T09:00:00Z');

describe('effectiveLimit', () => {
  it.each([
    // percent, enabled users, expected limit, basis present
    [0, 10_000, 50, false],
    [1, 10_000, 50, false], // 100 is above 50: the count limit applies
    [0.5, 2_400, 12, true],
    [0.01, 10, 1, true], // never below 1
    [1, undefined, 50, false],
  ] as const)('%s %% of %s enabled users gives %s', (percent, enabled, expected, basis) => {
    const limit = effectiveLimit(LIMITS.employeeLeaving, percent, enabled);
    expect(limit.maxPerWindow).toBe(expected);
    expect(limit.basis !== undefined).toBe(basis);
  });
});

describe('SharedGuardrail with a share of the tenant', () => {
  function guardrail(count: () => Promise<number>, now = { t: T0 }) {
    return new SharedGuardrail(new MemoryGuardrailStore(), LIMITS, () => new Date(now.t), {
      percent: { employeeLeaving: 0.5 },
      countEnabledUsers: count,
      cacheMs: 60_000,
    });
  }

  it('trips at the share when it is lower, and says so in the reason', async () => {
    const g = guardrail(() => Promise.resolve(2_400));
    const results = [];
    for (let i = 0; i < 13; i++) results.push(await g.admit({ route: 'employeeLeaving' }));
    expect(results.filter((r) => r.admitted)).toHaveLength(12);
    const held = results[12];
    expect(held?.admitted).toBe(false);
    if (held?.admitted === false) {
      expect(held.trippedNow).toBe(true);
      expect(held.reason).toContain('limit 12: 0.5 % of 2400 enabled users');
    }
  });

  it('reads the count once per cache period, again after it', async () => {
    let reads = 0;
    const now = { t: T0 };
    const g = guardrail(() => {
      reads += 1;
      return Promise.resolve(100_000);
    }, now);
    await g.admit({ route: 'employeeLeaving' });
    await g.admit({ route: 'employeeLeaving' });
    expect(reads).toBe(1);
    now.t += 61_000;
    await g.admit({ route: 'employeeLeaving' });
    expect(reads).toBe(2);
  });

  it('a route without a share never reads the count', async () => {
    let reads = 0;
    const g = guardrail(() => {
      reads += 1;
      return Promise.resolve(10);
    });
    expect((await g.admit({ route: 'mfaEnabled' })).admitted).toBe(true);
    expect(reads).toBe(0);
  });

  it('fails closed when the count cannot be read, and asks again next time', async () => {
    let calls = 0;
    const g = guardrail(() => {
      calls += 1;
      return calls === 1
        ? Promise.reject(
            new OffboardingError(ErrorCodes.GraphUnavailable, 'down', { retryable: true }),
          )
        : Promise.resolve(10_000);
    });
    await expect(g.admit({ route: 'employeeLeaving' })).rejects.toMatchObject({
      code: ErrorCodes.GraphUnavailable,
      retryable: true,
    });
    expect((await g.admit({ route: 'employeeLeaving' })).admitted).toBe(true);
    expect(calls).toBe(2);
  });
});
