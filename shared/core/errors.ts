/**
 * One error taxonomy for the whole app. Every adapter translates what its SDK throws into an
 * OffboardingError at its boundary, so use cases and functions only ever reason about `code` and
 * `retryable`.
 */
export const ErrorCodes = {
  /** The event failed parsing or validation. Never reaches Graph. */
  InvalidEvent: 'InvalidEvent',
  /** A required setting is missing or malformed. */
  InvalidConfiguration: 'InvalidConfiguration',
  /** Graph has no such user (404). */
  UserNotFound: 'UserNotFound',
  /** Graph refused the call for lack of a permission or Entra role (403). */
  Forbidden: 'Forbidden',
  /** The user is mastered in on-premises AD; the attribute must be changed there. */
  OnPremisesMastered: 'OnPremisesMastered',
  /**
   * The identifier now names another directory object than an earlier attempt (or the scheduling)
   * of this event resolved: a UPN renamed or reused. Nothing is written to the new owner.
   */
  UserChanged: 'UserChanged',
  /** The user is in PROTECTED_USERS; nothing is written. */
  ProtectedAccount: 'ProtectedAccount',
  /**
   * The sign-in log needs Microsoft Entra ID P1 or P2 and the tenant has neither (Graph 403
   * Authentication_RequestFromNonPremiumTenantOrB2CTenant): the sign-in watch is unavailable.
   */
  NoPremiumLicence: 'NoPremiumLicence',
  /** Graph rejected the request as malformed (400) for another reason. */
  GraphBadRequest: 'GraphBadRequest',
  /** Graph throttled us (429). */
  Throttled: 'Throttled',
  /** Graph or the network failed in a way that may pass (5xx, timeout, reset). */
  GraphUnavailable: 'GraphUnavailable',
  /** No token could be obtained (managed identity endpoint down, 401 from Graph). */
  AuthenticationFailed: 'AuthenticationFailed',
  /** Revocation returned success but signInSessionsValidFromDateTime did not move. */
  VerificationFailed: 'VerificationFailed',
  /** The audit store could not be read or written. */
  AuditUnavailable: 'AuditUnavailable',
  /** The message broker could not be reached (scheduling, replay). */
  MessagingUnavailable: 'MessagingUnavailable',
  /** A cancellation arrived for a departure that was already carried out. */
  DepartureAlreadyExecuted: 'DepartureAlreadyExecuted',
  /**
   * On an action of a superseded event: an earlier run began this write and ended without
   * recording whether Graph made it (the account as read says what can be known).
   */
  WriteOutcomeUnknown: 'WriteOutcomeUnknown',
  /**
   * A reinstatement of an account the audit does not show this app disabled (no departure of
   * this app disabled it, or a later reinstatement already re-enabled it): nothing is written.
   * Only an operator can override it (`offboard reinstate --force`); an HR event cannot.
   */
  NotDisabledByThisApp: 'NotDisabledByThisApp',
  /**
   * A reinstatement arrived while a departure of the same user is being carried out (claimed
   * now, or failed and due for a retry): it is retried after the departure, so the departure
   * cannot disable the account again behind it.
   */
  DepartureUnderway: 'DepartureUnderway',
  /**
   * The app's shared Graph write budget has no room now: the event waits (a scheduled copy) without
   * consuming an attempt and without sending Graph a request it would throttle.
   */
  Deferred: 'Deferred',
  /**
   * The record is final in the audit table, but the immutable log or the outcome topic did not
   * take it: the delivery comes back and gives it again (at least once). Nothing is redone.
   */
  FinalRecordUndelivered: 'FinalRecordUndelivered',
  /** Transient failures went on for RETRY_MAX_ATTEMPTS attempts. */
  RetriesExhausted: 'RetriesExhausted',
  /** Anything we did not anticipate. Treated as retryable: losing an event is worse than retrying. */
  Unexpected: 'Unexpected',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface OffboardingErrorOptions {
  retryable: boolean;
  /** Seconds the remote side asked us to wait (Graph Retry-After). */
  retryAfterSeconds?: number;
  /** Graph request id, for support tickets. */
  requestId?: string;
  cause?: unknown;
}

export class OffboardingError extends Error {
  override readonly name = 'OffboardingError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterSeconds?: number;
  readonly requestId?: string;

  constructor(code: ErrorCode, message: string, options: OffboardingErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
    if (options.requestId !== undefined) this.requestId = options.requestId;
  }
}

export function isOffboardingError(error: unknown): error is OffboardingError {
  return error instanceof OffboardingError;
}

/** Wraps anything thrown by code we do not own; unknown failures are retryable by default. */
export function toOffboardingError(error: unknown): OffboardingError {
  if (isOffboardingError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new OffboardingError(ErrorCodes.Unexpected, message, { retryable: true, cause: error });
}
