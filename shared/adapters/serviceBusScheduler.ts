import type { ServiceBusClient, ServiceBusSender } from '@azure/service-bus';
import type { TokenCredential } from '@azure/identity';
import Long from 'long';
import { Budgets, withDeadline } from './deadline';
import { ErrorCodes, OffboardingError } from '../core/errors';
import type { OutgoingMessage, Scheduler } from '../core/messaging';
import { SERVICE_BUS_SETTING_REQUIRED } from '../app/config';

export interface ServiceBusTarget {
  fullyQualifiedNamespace?: string;
  connectionString?: string;
}

type ServiceBusSdk = typeof import('@azure/service-bus');
let loadedSdk: ServiceBusSdk | undefined;

/**
 * The Service Bus SDK, loaded on first use: it costs about 100 ms of every cold start, and
 * `offboard audit` never needs it. A plain require (not import()) so that the first use stays
 * synchronous: the deployment package makes it a file of its own, read only when this runs
 * (dev/package-app.mjs), and the function app warms it up after start-up (Runtime.warmUp).
 */
function serviceBusSdk(): ServiceBusSdk {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy on purpose (see above)
  loadedSdk ??= require('@azure/service-bus') as ServiceBusSdk;
  return loadedSdk;
}

/** Only the SDK makes ServiceBusErrors; it need not be loaded to tell that an error is not one. */
function isServiceBusError(error: unknown): error is import('@azure/service-bus').ServiceBusError {
  const named = typeof error === 'object' && error !== null && 'name' in error;
  return named && error.name === 'ServiceBusError' && serviceBusSdk().isServiceBusError(error);
}

export function createServiceBusClient(
  target: ServiceBusTarget,
  credential: TokenCredential,
): ServiceBusClient {
  // Each try is bounded here; each operation as a whole by withDeadline in the scheduler.
  const options = {
    retryOptions: { timeoutInMs: Budgets.serviceBusTryMs, maxRetries: 2, maxRetryDelayInMs: 5_000 },
  };
  if (target.connectionString !== undefined)
    return new (serviceBusSdk().ServiceBusClient)(target.connectionString, options);
  if (target.fullyQualifiedNamespace !== undefined) {
    const { ServiceBusClient } = serviceBusSdk();
    return new ServiceBusClient(target.fullyQualifiedNamespace, credential, options);
  }
  throw new OffboardingError(ErrorCodes.InvalidConfiguration, SERVICE_BUS_SETTING_REQUIRED, {
    retryable: false,
  });
}

/** One Service Bus operation within its budget; a hung broker ends as MessagingUnavailable. */
export function bounded<T>(action: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return withDeadline(
    Budgets.serviceBusCallMs,
    () =>
      new OffboardingError(
        ErrorCodes.MessagingUnavailable,
        `Could not ${action}: Service Bus did not answer within ${Budgets.serviceBusCallMs / 1000} s.`,
        { retryable: true },
      ),
    work,
  );
}

/** Translates what the Service Bus SDK throws into the app's taxonomy. */
export function translateServiceBusError(action: string, error: unknown): OffboardingError {
  if (error instanceof OffboardingError) return error;
  if (isServiceBusError(error)) {
    const hint =
      error.code === 'UnauthorizedAccess'
        ? ' The identity needs Azure Service Bus Data Sender on the queue.'
        : '';
    return new OffboardingError(
      ErrorCodes.MessagingUnavailable,
      `Could not ${action}: ${error.code}: ${error.message.replace(/\.$/, '')}.${hint}`,
      {
        retryable:
          error.retryable || error.code === 'ServiceBusy' || error.code === 'ServiceTimeout',
        cause: error,
      },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new OffboardingError(ErrorCodes.MessagingUnavailable, `Could not ${action}: ${message}`, {
    retryable: true,
    cause: error,
  });
}

/** Scheduler on Service Bus scheduled messages; one sender per queue, reused. */
export class ServiceBusScheduler implements Scheduler {
  private readonly senders = new Map<string, ServiceBusSender>();

  constructor(private readonly client: ServiceBusClient) {}

  async schedule(queue: string, message: OutgoingMessage, at: Date): Promise<string> {
    try {
      const [sequence] = await bounded(`schedule a message on ${queue}`, (abortSignal) =>
        this.sender(queue).scheduleMessages(
          {
            body: message.body,
            messageId: message.messageId,
            contentType: message.contentType ?? 'application/json',
            applicationProperties: message.applicationProperties,
          },
          at,
          { abortSignal },
        ),
      );
      if (sequence === undefined) throw new Error('no sequence number returned');
      return sequence.toString();
    } catch (error) {
      throw translateServiceBusError(`schedule a message on ${queue}`, error);
    }
  }

  async cancel(queue: string, sequenceNumber: string): Promise<boolean> {
    try {
      await bounded(`cancel scheduled message ${sequenceNumber} on ${queue}`, (abortSignal) =>
        this.sender(queue).cancelScheduledMessages(Long.fromString(sequenceNumber), {
          abortSignal,
        }),
      );
      return true;
    } catch (error) {
      if (isServiceBusError(error) && error.code === 'MessageNotFound') return false;
      throw translateServiceBusError(
        `cancel scheduled message ${sequenceNumber} on ${queue}`,
        error,
      );
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.senders.values()].map((sender) => sender.close()));
    this.senders.clear();
  }

  private sender(queue: string): ServiceBusSender {
    let sender = this.senders.get(queue);
    if (sender === undefined) {
      sender = this.client.createSender(queue);
      this.senders.set(queue, sender);
    }
    return sender;
  }
}
