import type { InvocationContext } from '@azure/functions';
import type { EventKind } from './events';
import type { ProcessResult } from './offboard';
import type { Runtime } from './runtime';

/** What the trigger does with the message once the use case is done. */
export type Settlement = 'complete' | 'abandon';

/**
 * The Service Bus trigger completes a message when the handler returns and abandons it when the
 * handler throws. Done events complete; retryable and permanent failures throw. A permanent failure
 * is already in the audit and later deliveries of the same message skip Graph, so the queue's low
 * maxDeliveryCount moves it to the dead-letter queue.
 */
export function settlementFor(result: ProcessResult): Settlement {
  return result.disposition === 'done' ? 'complete' : 'abandon';
}

export class SettlementError extends Error {
  override readonly name = 'SettlementError';
  constructor(
    message: string,
    readonly code: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

function messageIdOf(context: InvocationContext): string {
  const id = context.triggerMetadata?.messageId;
  return typeof id === 'string' && id !== '' ? id : `invocation:${context.invocationId}`;
}

/** A Service Bus queue handler around the offboarding use case. */
export function createQueueHandler(runtime: () => Runtime, accepts: readonly EventKind[]) {
  return async function handleQueueMessage(message: unknown, context: InvocationContext): Promise<void> {
    const messageId = messageIdOf(context);
    // Throws AuditUnavailable when the audit cannot be read or written: the host abandons the
    // message and it is delivered again, so nothing is lost.
    const result = await runtime().offboarding.process({ body: message, accepts, messageId });
    const { record } = result;
    const summary = {
      eventId: record.eventId,
      messageId,
      outcome: result.duplicate ? 'duplicate' : record.outcome,
      objectId: record.objectId,
      actions: record.actions.map((a) => `${a.action}:${a.status}`).join(','),
      verified: record.verification?.verified,
      attempts: record.attempts,
      errorCode: result.error?.code,
    };
    if (settlementFor(result) === 'complete') {
      context.log('Event processed', summary);
      return;
    }
    const error = result.error;
    const code = error?.code ?? record.errorCode ?? 'Unexpected';
    const text = error?.message ?? record.errorMessage ?? 'failed';
    if (result.disposition === 'retry') {
      context.warn('Event failed, will be retried', summary, text);
      throw new SettlementError(`Retryable failure ${code} for event ${record.eventId}: ${text}`, code, true);
    }
    context.error('Event failed permanently, heading for the dead-letter queue', summary, text);
    throw new SettlementError(`Permanent failure ${code} for event ${record.eventId}: ${text}`, code, false);
  };
}
