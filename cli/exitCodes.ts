import { ErrorCodes, type OffboardingError } from '../shared/core/errors';

/** Exit codes (sysexits-style, so runbooks can branch on them). */
export const ExitCodes = {
  /** Succeeded, dry run, or already processed. */
  ok: 0,
  /** Failed or refused; running it again will not help. */
  failed: 1,
  usage: 64,
  /** Failed, but may pass if run again later. */
  retryable: 75,
  config: 78,
} as const;

/** A command line that cannot mean anything: exit 64 with the command's usage. */
export class UsageError extends Error {}

export function exitCodeOf(failure: OffboardingError): number {
  if (failure.code === ErrorCodes.InvalidConfiguration) return ExitCodes.config;
  return failure.retryable ? ExitCodes.retryable : ExitCodes.failed;
}
