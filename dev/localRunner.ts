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
    });
    receivers.push(receiver);
    receiver.subscribe(
      {
        processMessage: async (message: ServiceBusReceivedMessage) => {
          const context = new InvocationContext(contextInit(binding, message, options.onLog));
          const messageId = String(message.messageId ?? '');
          try {
            await binding.handler(message.body, context);
          } catch (error) {
            await receiver.abandonMessage(message);
            options.onSettled?.({
              functionName: binding.functionName,
              messageId,
              settlement: 'abandon',
              error,
            });
            return;
          }
          await receiver.completeMessage(message);
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
