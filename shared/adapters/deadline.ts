import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import { ErrorCodes, OffboardingError } from '../core/errors';

/**
 * Every wait on a dependency has a bound. Per try, the SDK's own timeout where it has one (Service
 * Bus); in all, these budgets,
 * after which the call ends in a retryable error naming the dependency. They sit well inside the
 * function timeout (host.json, 5 min) together with Graph's 45 s per call (graphDirectory.ts) and
 * the run budget (offboard.ts), so an invocation never hangs until the host kills it.
 */
export const Budgets = {
  /** Managed identity (or developer) token, all SDK retries included. */
  tokenMs: 30_000,
  /** One audit table operation, all SDK retries included. */
  auditCallMs: 30_000,
  /** One Service Bus operation (schedule, cancel, send), all SDK retries included. */
  serviceBusCallMs: 30_000,
  /** One try of a Service Bus operation. */
  serviceBusTryMs: 10_000,
} as const;

/**
 * Runs `work` with an abort signal and rejects with `onTimeout()` once `ms` have passed, whether or
 * not the SDK honours the signal (a hung socket still ends the wait).
 */
export async function withDeadline<T>(
  ms: number,
  onTimeout: () => OffboardingError,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(onTimeout());
    }, ms);
  });
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** A credential whose token requests end after Budgets.tokenMs with AuthenticationFailed. */
export function boundedCredential(inner: TokenCredential, what: string): TokenCredential {
  return {
    getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      return withDeadline(
        Budgets.tokenMs,
        () =>
          new OffboardingError(
            ErrorCodes.AuthenticationFailed,
            `No token from ${what} within ${Budgets.tokenMs / 1000} s (the identity endpoint did not answer).`,
            { retryable: true },
          ),
        (abortSignal) => inner.getToken(scopes, { ...options, abortSignal }),
      );
    },
  };
}
