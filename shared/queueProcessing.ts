import { createHash } from 'node:crypto';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { decodeBody, type EventKind } from './events';
import { MessageProperties, type Scheduler } from './messaging';
import type { OffboardingService, ProcessResult } from './offboard';
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

  async handle(queue: string, accepts: readonly EventKind[], delivery: QueueDelivery): Promise<QueueOutcome> {
    const properties = delivery.applicationProperties ?? {};
    const attempt = attemptOf(properties);
    const result = await this.deps.offboarding.process({
      body: delivery.body,
      accepts,
      messageId: delivery.messageId,
      scheduledCopy: properties[MessageProperties.scheduledFor] !== undefined,
    });
    if (result.disposition === 'done') return { settlement: 'complete', result };
    if (result.disposition === 'reject') return { settlement: 'abandon', result };

    const error = result.error ?? new OffboardingError(ErrorCodes.Unexpected, 'Failed.', { retryable: true });
    const { record } = result;
    if (attempt >= this.deps.retry.maxAttempts) {
      record.retryable = false;
      record.errorCode = ErrorCodes.RetriesExhausted;
      record.errorMessage = `Gave up after ${attempt} attempts; last error ${error.code}: ${error.message}`;
      delete record.nextAttemptAt;
      await this.deps.audit.put(record);
      const exhausted = new OffboardingError(ErrorCodes.RetriesExhausted, record.errorMessage, { retryable: false });
      return { settlement: 'abandon', result: { ...result, disposition: 'reject', error: exhausted } };
    }

    const nextAttempt = attempt + 1;
    const at = new Date(
      this.now().getTime() + retryDelayMs(this.deps.retry, nextAttempt, error.retryAfterSeconds, this.random),
    );
    const original = String(properties[MessageProperties.originalMessageId] ?? delivery.messageId);
    let sequenceNumber: string;
    try {
      sequenceNumber = await this.deps.scheduler.schedule(
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
    } catch (scheduleError) {
      // Could not park it: let Service Bus redeliver (this one attempt does burn a delivery).
      result.error = toOffboardingError(scheduleError);
      return { settlement: 'abandon', result };
    }
    record.nextAttemptAt = at.toISOString();
    await this.deps.audit.put(record);
    return { settlement: 'complete', result, retry: { attempt: nextAttempt, at: record.nextAttemptAt, sequenceNumber } };
  }
}

function scalarProperties(properties: Record<string, unknown>): Record<string, string | number | boolean> {
  const scalars: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(properties)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') scalars[key] = value;
  }
  return scalars;
}
