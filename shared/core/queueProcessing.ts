import { randomUUID } from 'node:crypto';
import { ErrorCodes, toOffboardingError } from './errors';
import { outageCopyId } from './eventIdentity';
import { decodeBody, salvageEventId } from './events';
import { MessageProperties, scalarProperties, type Scheduler } from './messaging';
import type { Delivery, OffboardingService, ProcessResult } from './offboard';
import type { AuditRecord } from './ports';
import { retryDelayMs, type RetryPolicy } from './retryPolicy';
import type { RouteName } from './routes';

/** A message as the Service Bus trigger (or the local runner) hands it over: a Delivery of a queue. */
export type QueueDelivery = Pick<Delivery, 'body' | 'messageId' | 'properties'>;

/**
 * - complete: the event is finished, or a later attempt is safely parked.
 * - abandon: throw from the function. Either the event failed permanently (already audited; every
 *   later delivery skips Graph, so maxDeliveryCount moves it to the dead-letter queue) or no later
 *   attempt could be parked (Service Bus redelivers it).
 */
export type Settlement = 'complete' | 'abandon';

export interface QueueOutcome {
  settlement: Settlement;
  result: ProcessResult;
}

export interface QueueProcessorDeps {
  offboarding: OffboardingService;
  scheduler: Scheduler;
  queues: Readonly<Record<RouteName, string>>;
  retry: RetryPolicy;
  now?: () => Date;
  random?: () => number;
}

/**
 * The Service Bus side of the use case: maps its result to complete or abandon, and keeps an
 * audit store outage from burning delivery count (the only case where the attempt counter on the
 * message is used: the audit, which normally counts attempts, could not be reached).
 */
export class QueueProcessor {
  private readonly now: () => Date;
  private readonly random: () => number;

  constructor(private readonly deps: QueueProcessorDeps) {
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
  }

  async handle(route: RouteName, delivery: QueueDelivery): Promise<QueueOutcome> {
    const properties = delivery.properties ?? {};
    // A copy parked after an audit outage carries the claim id of the run that parked it: it runs
    // under the same claim instead of waiting for the lease to run out. The id is a random UUID
    // known only to the audit record and that copy, so it cannot be guessed to steal a claim.
    const handedOver = properties[MessageProperties.claimHandover];
    const runId = typeof handedOver === 'string' && handedOver !== '' ? handedOver : randomUUID();
    try {
      const result = await this.deps.offboarding.process({
        body: delivery.body,
        route,
        messageId: delivery.messageId,
        properties,
        runId,
      });
      const settlement =
        result.disposition === 'done' || result.retry !== undefined ? 'complete' : 'abandon';
      return { settlement, result };
    } catch (thrown) {
      // The audit store failed (possibly after Graph writes): retry later like any transient
      // failure. Nothing final was recorded, so the next attempt redoes the (idempotent) work.
      const error = toOffboardingError(thrown);
      const attempt = attemptOf(properties);
      if (!error.retryable || attempt >= this.deps.retry.maxAttempts) throw error;
      const at = new Date(
        this.now().getTime() +
          retryDelayMs(this.deps.retry, attempt + 1, error.retryAfterSeconds, this.random),
      );
      const carried = properties[MessageProperties.originalMessageId];
      const original = typeof carried === 'string' ? carried : delivery.messageId;
      // Deterministic per attempt: a crash before completion does not park two copies.
      const messageId = outageCopyId(original, attempt + 1);
      let sequenceNumber: string;
      try {
        sequenceNumber = await this.deps.scheduler.schedule(
          this.deps.queues[route],
          {
            body: decodeBody(delivery.body),
            messageId,
            contentType: 'application/json',
            applicationProperties: {
              ...scalarProperties(properties),
              [MessageProperties.attempt]: attempt + 1,
              [MessageProperties.originalMessageId]: original,
              // This run is over: its claim (if it made or inherited one) passes to the copy.
              [MessageProperties.claimHandover]: runId,
            },
          },
          at,
        );
      } catch {
        throw error;
      }
      const result: ProcessResult = {
        disposition: 'done',
        duplicate: false,
        error,
        record: unrecorded(delivery, error.code, error.message, this.now()),
        retry: { at: at.toISOString(), messageId, sequenceNumber },
      };
      return { settlement: 'complete', result };
    }
  }
}

/** The attempt counter a copy carries: trusted only for audit outages, and only up to the cap. */
function attemptOf(properties: Record<string, unknown>): number {
  const value = Number(properties[MessageProperties.attempt] ?? 1);
  return Number.isInteger(value) && value >= 1 ? value : 1;
}

/** A stand-in record for logging when the audit itself failed and holds nothing for this event. */
function unrecorded(
  delivery: QueueDelivery,
  errorCode: string,
  errorMessage: string,
  now: Date,
): AuditRecord {
  const at = now.toISOString();
  return {
    identityKey: '',
    contentDigest: '',
    eventId: salvageEventId(delivery.body) ?? `message:${delivery.messageId}`,
    requestedActions: [],
    actions: [],
    graphRequestIds: [],
    outcome: 'failed',
    errorCode: errorCode === '' ? ErrorCodes.Unexpected : errorCode,
    errorMessage,
    retryable: true,
    notes: [],
    dryRun: false,
    attempts: 0,
    duplicates: 0,
    messageId: delivery.messageId,
    firstAttemptAt: at,
    lastAttemptAt: at,
  };
}
