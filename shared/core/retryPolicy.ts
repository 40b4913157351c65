export interface RetryPolicy {
  /** Attempts in all, the first included; the last failure dead-letters the event. */
  maxAttempts: number;
  baseDelaySeconds: number;
  maxDelaySeconds: number;
}

/**
 * Delay before attempt `nextAttempt` (2 for the first retry): exponential from the base, capped,
 * with "equal jitter" (half fixed, half random) so a throttling storm does not come back in step;
 * never shorter than what Graph asked for in Retry-After.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  nextAttempt: number,
  retryAfterSeconds: number | undefined,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, nextAttempt - 2);
  const ceiling = Math.min(policy.maxDelaySeconds, policy.baseDelaySeconds * 2 ** exponent) * 1000;
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  return Math.round(Math.max(jittered, (retryAfterSeconds ?? 0) * 1000));
}
