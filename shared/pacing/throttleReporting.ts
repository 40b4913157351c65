import { ErrorCodes, isOffboardingError } from '../core/errors';
import type { Directory } from '../core/ports';
import type { ThrottleFeedback } from './sharedPacer';

/**
 * A Directory that tells the shared budget when Graph throttles: a 429's Retry-After pauses every
 * instance, not only the invocation that met it. Everything else passes through unchanged.
 */
export function reportingThrottles(directory: Directory, feedback: ThrottleFeedback): Directory {
  const observe = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      if (isOffboardingError(error) && error.code === ErrorCodes.Throttled) {
        feedback.reportThrottled(error.retryAfterSeconds ?? 1);
      }
      throw error;
    }
  };
  return {
    getUser: (ref) => observe(() => directory.getUser(ref)),
    revokeSignInSessions: (userId) => observe(() => directory.revokeSignInSessions(userId)),
    disableAccount: (userId) => observe(() => directory.disableAccount(userId)),
    enableAccount: (userId) => observe(() => directory.enableAccount(userId)),
    resetPassword: (userId, password) => observe(() => directory.resetPassword(userId, password)),
  };
}
