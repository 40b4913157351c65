import { createHash } from 'node:crypto';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { decodeBody, salvageEventId, type EventKind } from './events';
import { MessageProperties, type Scheduler } from './messaging';
import { failureRecord, type OffboardingService, type ProcessResult } from './offboard';
import type { AuditLog } from './ports';
import { retryDelayMs, type RetryPolicy } from './retryPolicy';

/** A message as the Service Bus trigger (or the local runner) hands it over. */
export interface QueueDelivery {
  body: unknown;
  messageId: string;
  applicationProperties?: Record<string, unknown>;
}

/**
 * - complete: the event is finished, or a retry copy is safely scheduled.
 * - abandon: throw from the function. Either the event failed permanently (already audited; every
 *   later delivery skips Graph, so maxDeliveryCount moves it to the dead-letter queue) or a retry
 *   could not be scheduled (Service Bus redelivers it).
 */
export type Settlement = 'complete' | 'abandon';

export interface QueueOutcome {
  settlement: Settlement;
  result: ProcessResult;
  /** Set when a delayed retry was scheduled. */
  retry?: { attempt: number; at: string; sequenceNumber: string };
}

export interface QueueProcessorDeps {
  offboarding: OffboardingService;
  audit: AuditLog;
  scheduler: Scheduler;
  retry: RetryPolicy;
  now?: () => Date;
  random?: () => number;
}

function attemptOf(properties: Record<string, unknown> | undefined): number {
  const value = Number(properties?.[MessageProperties.attempt] ?? 1);
  return Number.isInteger(value) && value >= 1 ? value : 1;
}

/**
 * Settlement and delayed retries around the offboarding use case. A transient failure never burns
 * delivery count: a copy of the message is scheduled for later with a new MessageId and the next
 * attempt number, and the original is completed. After RETRY_MAX_ATTEMPTS the event is recorded as
 * failed for good and heads for the dead-letter queue.
 */
export class QueueProcessor {
  private readonly now: () => Date;
  private readonly random: () => number;

  constructor(private readonly deps: QueueProcessorDeps) {
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
  }

  async handle(
    queue: string,
    accepts: readonly EventKind[],
    delivery: QueueDelivery,
  ): Promise<QueueOutcome> {
    const properties = delivery.applicationProperties ?? {};
    const attempt = attemptOf(properties);
    let result: ProcessResult;
    try {
      result = await this.deps.offboarding.process({
        body: delivery.body,
        accepts,
        messageId: delivery.messageId,
        scheduledCopy: properties[MessageProperties.scheduledFor] !== undefined,
        attempt,
      });
    } catch (thrown) {
      // The audit store failed (possibly after Graph writes): retry later like any transient
      // failure, so an outage does not burn delivery count. Nothing was recorded, so the next
      // attempt redoes the (idempotent) work and writes the one final record.
      const error = toOffboardingError(thrown);
      if (!error.retryable || attempt >= this.deps.retry.maxAttempts) throw error;
      const retry = await this.scheduleRetry(queue, delivery, attempt, error.retryAfterSeconds);
      if (retry === undefined) throw error;
      return { settlement: 'complete', result: unrecorded(delivery, error), retry };
    }
    if (result.disposition === 'done') return { settlement: 'complete', result };
    if (result.disposition === 'reject') return { settlement: 'abandon', result };

    const error =
      result.error ?? new OffboardingError(ErrorCodes.Unexpected, 'Failed.', { retryable: true });
    const { record } = result;
    if (attempt >= this.deps.retry.maxAttempts) {
      record.retryable = false;
      record.errorCode = ErrorCodes.RetriesExhausted;
      record.errorMessage = `Gave up after ${attempt} attempts; last error ${error.code}: ${error.message}`;
      delete record.nextAttemptAt;
      await this.deps.audit.put(record);
      const exhausted = new OffboardingError(ErrorCodes.RetriesExhausted, record.errorMessage, {
        retryable: false,
      });
      return {
        settlement: 'abandon',
        result: { ...result, disposition: 'reject', error: exhausted },
      };
    }

    const retry = await this.scheduleRetry(queue, delivery, attempt, error.retryAfterSeconds);
    if (retry === undefined) return { settlement: 'abandon', result };
    record.nextAttemptAt = retry.at;
    await this.deps.audit.put(record);
    return { settlement: 'complete', result, retry };
  }

  /** Parks a copy for the next attempt; undefined when Service Bus would not take it. */
  private async scheduleRetry(
    queue: string,
    delivery: QueueDelivery,
    attempt: number,
    retryAfterSeconds: number | undefined,
  ): Promise<QueueOutcome['retry']> {
    const properties = delivery.applicationProperties ?? {};
    const nextAttempt = attempt + 1;
    const at = new Date(
      this.now().getTime() +
        retryDelayMs(this.deps.retry, nextAttempt, retryAfterSeconds, this.random),
    );
    const carried = properties[MessageProperties.originalMessageId];
    const original = typeof carried === 'string' ? carried : delivery.messageId;
    try {
      const sequenceNumber = await this.deps.scheduler.schedule(
        queue,
        {
          body: decodeBody(delivery.body),
          // New id per attempt (duplicate detection would drop a reused one), deterministic so a
          // crash before completion does not schedule two copies.
          messageId: `retry-${nextAttempt}-${createHash('sha256').update(original).digest('hex').slice(0, 40)}`,
          contentType: 'application/json',
          applicationProperties: {
            ...scalarProperties(properties),
            [MessageProperties.attempt]: nextAttempt,
            [MessageProperties.originalMessageId]: original,
          },
        },
        at,
      );
      return { attempt: nextAttempt, at: at.toISOString(), sequenceNumber };
    } catch {
      // Could not park it: the caller lets Service Bus redeliver (this attempt burns a delivery).
      return undefined;
    }
  }
}

/** A result for logging when the audit itself failed and holds nothing for this event. */
function unrecorded(delivery: QueueDelivery, error: OffboardingError): ProcessResult {
  const eventId = salvageEventId(delivery.body) ?? `message:${delivery.messageId}`;
  const record = failureRecord(eventId, delivery.messageId, error, new Date().toISOString(), {
    dryRun: false,
  });
  return { disposition: 'retry', duplicate: false, error, record };
}

function scalarProperties(
  properties: Record<string, unknown>,
): Record<string, string | number | boolean> {
  const scalars: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(properties)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      scalars[key] = value;
  }
  return scalars;
}
