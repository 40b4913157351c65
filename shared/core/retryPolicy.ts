import { ErrorCodes, type OffboardingError } from './errors';

export interface RetryPolicy {
  /**
   * Attempts in all for an MFA event, the first included; the last failure dead-letters it. Waits
   * Graph asked for (429, 5xx with Retry-After) and waits for the write budget use no attempt.
   */
  maxAttempts: number;
  baseDelaySeconds: number;
  maxDelaySeconds: number;
  /**
   * A departure (anything on the departures route) is never given up for a count of attempts: only
   * on a permanent error or once it is still failing this long after its due time.
   */
  giveUpAfterMinutes?: number;
  /** A departure still retrying this long after its due time is announced as `delayed`. */
  overdueAfterMinutes?: number;
}

export const DEFAULT_GIVE_UP_AFTER_MINUTES = 24 * 60;
export const DEFAULT_OVERDUE_AFTER_MINUTES = 15;

/**
 * A wait the service asked for (throttling, or an outage that said when to come back) or the app's
 * own write budget: the event was not at fault, so the wait uses no attempt.
 */
export function isServiceWait(error: OffboardingError): boolean {
  return (
    error.code === ErrorCodes.Throttled ||
    error.code === ErrorCodes.Deferred ||
    (error.code === ErrorCodes.GraphUnavailable && error.retryAfterSeconds !== undefined)
  );
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
