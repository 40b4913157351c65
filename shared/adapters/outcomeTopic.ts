import type { ServiceBusClient, ServiceBusSender } from '@azure/service-bus';
import type { AppConfig } from '../app/config';
import { ErrorCodes, OffboardingError } from '../core/errors';
import {
  OUTCOME_CONTENT_TYPE,
  outcomeProperties,
  toOutcomeEvent,
  type OutcomeEvent,
} from '../core/outcomeEvent';
import type { AuditRecord, FinalRecordSink } from '../core/ports';
import { bounded, translateServiceBusError } from './serviceBusScheduler';

/**
 * The outcome topic (OUTCOME_TOPIC): every final record published as a CloudEvents 1.0 event in
 * structured mode. The MessageId is the event id, so the topic's duplicate detection drops a
 * repeat within its window and subscribers de-duplicate on the id after it (docs/outcomes.md).
 *
 * Takes the runtime's lazily created Service Bus client: nothing connects, and the SDK is not
 * loaded, until the first final record. One sender per process, reused.
 */
export function createOutcomeTopicSink(
  config: AppConfig,
  serviceBus: () => ServiceBusClient,
): OutcomeTopicSink {
  return new OutcomeTopicSink(config.outcomes.topic, serviceBus);
}

export class OutcomeTopicSink implements FinalRecordSink {
  readonly name = 'outcome topic';
  private sender: ServiceBusSender | undefined;

  constructor(
    private readonly topic: string,
    private readonly serviceBus: () => ServiceBusClient,
  ) {}

  async accept(record: AuditRecord): Promise<void> {
    const event = toOutcomeEvent(record);
    if (event === undefined) return;
    await this.publish(event);
  }

  async publish(event: OutcomeEvent): Promise<void> {
    const action = `publish outcome event ${event.id} to topic ${this.topic}`;
    try {
      await bounded(action, (abortSignal) =>
        this.topicSender().sendMessages(
          {
            // UTF-8 JSON in a data section: any AMQP client reads the CloudEvent as sent.
            body: Buffer.from(JSON.stringify(event), 'utf8'),
            messageId: event.id,
            contentType: OUTCOME_CONTENT_TYPE,
            ...(event.subject === undefined ? {} : { subject: event.subject }),
            applicationProperties: outcomeProperties(event),
          },
          { abortSignal },
        ),
      );
    } catch (error) {
      const cause = translateServiceBusError(action, error);
      // Always retryable: the record is final whatever happens here, only its announcement waits
      // (a disabled or missing topic is fixed by an operator while the delivery keeps coming back).
      throw new OffboardingError(ErrorCodes.MessagingUnavailable, cause.message, {
        retryable: true,
        cause: error,
      });
    }
  }

  /** Loads the Service Bus SDK and opens the sender's link (a batch needs it), sending nothing. */
  async warmUp(): Promise<void> {
    await bounded(`open a sender to topic ${this.topic}`, (abortSignal) =>
      this.topicSender().createMessageBatch({ abortSignal }),
    );
  }

  async close(): Promise<void> {
    const sender = this.sender;
    this.sender = undefined;
    await sender?.close();
  }

  private topicSender(): ServiceBusSender {
    this.sender ??= this.serviceBus().createSender(this.topic);
    return this.sender;
  }
}
