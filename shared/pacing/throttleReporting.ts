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
  // Every method of the port, whatever actions it has: a new action needs no change here.
  return new Proxy(directory, {
    get(target, property, receiver) {
      const member: unknown = Reflect.get(target, property, receiver);
      if (typeof member !== 'function') return member;
      return (...args: unknown[]) =>
        observe(() =>
          Promise.resolve((member as (...a: unknown[]) => unknown).apply(target, args)),
        );
    },
  });
}
