import type { ServiceBusClient } from '@azure/service-bus';
import type { AppConfig } from '../app/config';
import type { FinalRecordSink } from '../core/ports';

/**
 * The outcome topic: every final record published as a CloudEvents 1.0 event.
 * Being built (issue 10): until then no sink is returned and nothing is published.
 */
export function createOutcomeTopicSink(
  _config: AppConfig,
  _serviceBus: () => ServiceBusClient,
): FinalRecordSink | undefined {
  return undefined;
}
