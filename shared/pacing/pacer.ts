/**
 * The Graph write budget, shared by every instance of the app. The use case reserves the writes an
 * event will make before its first Graph write; the adapter decides whether the budget has room now.
 */
export type Lane = 'departure' | 'wave';

export interface WritePacer {
  /**
   * Reserves `writes` Graph writes for one event in `lane`. Resolves when the budget allows them
   * (possibly after a short, bounded wait); throws a retryable OffboardingError with code
   * `Deferred` and `retryAfterSeconds` when it does not, so the event waits without consuming an
   * attempt.
   */
  reserve(lane: Lane, writes: number): Promise<void>;
}

/** No pacing: every reservation is granted at once (tests, local runs by hand). */
export const unpaced: WritePacer = { reserve: () => Promise.resolve() };
