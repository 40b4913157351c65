/**
 * How the queues must be configured for the retry design to hold (infra/ creates them this way, the
 * local sandbox mirrors it, tests compare both against this).
 *
 * - Transient failures never burn delivery count: they are retried by scheduling a copy of the
 *   message later and completing the original.
 * - Permanent failures are recorded in the audit and then thrown on every delivery without touching
 *   Graph again, so a low maxDeliveryCount moves them to the dead-letter queue quickly.
 * - Duplicate detection drops an HR system's resend of the same MessageId within the window.
 */
export const QUEUE_POLICY = {
  maxDeliveryCount: 5,
  lockDuration: 'PT1M',
  lockDurationMs: 60_000,
  requiresDuplicateDetection: true,
  duplicateDetectionHistoryTimeWindow: 'PT10M',
  duplicateDetectionWindowMs: 10 * 60_000,
  deadLetteringOnMessageExpiration: true,
  /** Longer than the furthest leave date we accept to schedule (see MAX_SCHEDULE_AHEAD_DAYS). */
  defaultMessageTimeToLive: 'P400D',
} as const;

/** Leave dates further out than this are refused: HR systems publish departures weeks, not years, ahead. */
export const MAX_SCHEDULE_AHEAD_DAYS = 365;
