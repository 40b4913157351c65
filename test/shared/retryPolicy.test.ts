import { retryDelayMs } from '../../shared/core/retryPolicy';

const policy = { maxAttempts: 8, baseDelaySeconds: 30, maxDelaySeconds: 3600 };

describe('retryDelayMs', () => {
  it('doubles from the base delay, with jitter between half and all of it', () => {
    expect(retryDelayMs(policy, 2, undefined, () => 0)).toBe(15_000);
    expect(retryDelayMs(policy, 2, undefined, () => 1)).toBe(30_000);
    expect(retryDelayMs(policy, 3, undefined, () => 1)).toBe(60_000);
    expect(retryDelayMs(policy, 5, undefined, () => 1)).toBe(240_000);
  });

  it('is capped by the maximum delay', () => {
    expect(retryDelayMs(policy, 20, undefined, () => 1)).toBe(3_600_000);
  });

  it('never retries sooner than Graph asked in Retry-After', () => {
    expect(retryDelayMs(policy, 2, 120, () => 0)).toBe(120_000);
    expect(retryDelayMs(policy, 2, 0.5, () => 0)).toBe(15_000);
  });

  it('spreads retries out (no thundering herd)', () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelayMs(policy, 4, undefined)));
    expect(delays.size).toBeGreaterThan(40);
  });
});
