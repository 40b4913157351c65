import { InvocationContext, type InvocationContextInit } from '@azure/functions';
import {
  ServiceBusClient,
  type ProcessErrorArgs,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import { randomUUID } from 'node:crypto';

export type QueueHandler = (message: unknown, context: InvocationContext) => Promise<void>;

export interface RunnerBinding {
  functionName: string;
  queueName: string;
  handler: QueueHandler;
}

export interface LogLine {
  level: string;
  functionName: string;
  text: string;
}

export interface LocalRunnerOptions {
  connectionString: string;
  bindings: RunnerBinding[];
  /** Like host.json extensions.serviceBus.maxConcurrentCalls. */
  maxConcurrentCalls?: number;
  /** Like maxAutoLockRenewalDuration. */
  maxAutoLockRenewalDurationInMs?: number;
  onLog?: (line: LogLine) => void;
  onSettled?: (settled: {
    functionName: string;
    messageId: string;
    settlement: 'complete' | 'abandon';
    error?: unknown;
  }) => void;
}

export interface LocalRunner {
  stop(): Promise<void>;
}

/**
 * A development harness, not production: delivers queue messages to the same function handlers
 * with the Functions host's Service Bus semantics (peek-lock, complete when the handler returns,
 * abandon when it throws, automatic lock renewal). Production runs on Azure Functions.
 */
export function startLocalRunner(options: LocalRunnerOptions): LocalRunner {
  const client = new ServiceBusClient(options.connectionString);
  const receivers: ServiceBusReceiver[] = [];
  for (const binding of options.bindings) {
    const receiver = client.createReceiver(binding.queueName, {
      receiveMode: 'peekLock',
      maxAutoLockRenewalDurationInMs: options.maxAutoLockRenewalDurationInMs ?? 5 * 60_000,
      // AMQP timestamps in application properties (a binary-mode `cloudEvents:time`) stay dates,
      // as the host hands them over, instead of the SDK's default epoch milliseconds.
      skipConvertingDate: true,
    });
    receivers.push(receiver);
    const settle = settlingInTurn(receiver);
    receiver.subscribe(
      {
        processMessage: async (message: ServiceBusReceivedMessage) => {
          const context = new InvocationContext(contextInit(binding, message, options.onLog));
          const messageId = String(message.messageId ?? '');
          try {
            await binding.handler(message.body, context);
          } catch (error) {
            await settle.abandon(message);
            options.onSettled?.({
              functionName: binding.functionName,
              messageId,
              settlement: 'abandon',
              error,
            });
            return;
          }
          await settle.complete(message);
          options.onSettled?.({
            functionName: binding.functionName,
            messageId,
            settlement: 'complete',
          });
        },
        processError: async (args: ProcessErrorArgs) => {
          options.onLog?.({
            level: 'error',
            functionName: binding.functionName,
            text: `receiver error: ${args.error.message}`,
          });
          return Promise.resolve();
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: options.maxConcurrentCalls ?? 8 },
    );
  }
  return {
    stop: async () => {
      await Promise.all(receivers.map((receiver) => receiver.close()));
      await client.close();
    },
  };
}

/**
 * Settles one message at a time on a receiver, each after the broker answered the previous one.
 *
 * rhea 3.0.5 (under @azure/service-bus 7.9.5) merges the dispositions of consecutive deliveries
 * settled in the same tick into one frame, and when the range so far holds one delivery it does
 * not compare their outcomes (lib/session.js, write_dispositions): an abandon settled right after
 * a complete goes out as a complete, and Service Bus deletes a message that was to be retried or
 * dead-lettered. With maxConcurrentCalls > 1 that happens (1 to 3 events in a 1,000-event fault
 * run). The Functions host settles with the .NET SDK and is not affected.
 */
export function settlingInTurn(
  receiver: Pick<ServiceBusReceiver, 'completeMessage' | 'abandonMessage'>,
): {
  complete(message: ServiceBusReceivedMessage): Promise<void>;
  abandon(message: ServiceBusReceivedMessage): Promise<void>;
} {
  let previous: Promise<unknown> = Promise.resolve();
  const inTurn = (settle: () => Promise<void>): Promise<void> => {
    const next = previous.then(settle, settle);
    previous = next.catch(() => undefined);
    return next;
  };
  return {
    complete: (message) => inTurn(() => receiver.completeMessage(message)),
    abandon: (message) => inTurn(() => receiver.abandonMessage(message)),
  };
}

function contextInit(
  binding: RunnerBinding,
  message: ServiceBusReceivedMessage,
  onLog: LocalRunnerOptions['onLog'],
): InvocationContextInit {
  return {
    invocationId: randomUUID(),
    functionName: binding.functionName,
    // The trigger metadata the Functions host passes for a Service Bus message (1-based count).
    triggerMetadata: {
      messageId: message.messageId,
      deliveryCount: message.deliveryCount === undefined ? 1 : message.deliveryCount + 1,
      applicationProperties: message.applicationProperties ?? {},
      enqueuedTimeUtc: message.enqueuedTimeUtc?.toISOString(),
      sequenceNumber: message.sequenceNumber?.toString(),
      contentType: message.contentType,
    },
    logHandler: (level, ...args) =>
      onLog?.({
        level,
        functionName: binding.functionName,
        text: args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '),
      }),
  };
}
