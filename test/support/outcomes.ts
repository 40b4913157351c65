import {
  ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import type { OutcomeEvent } from '../../shared/core/outcomeEvent';
import { waitFor } from './wait';
import { OUTCOME_SUBSCRIPTION, OUTCOME_TOPIC, type World } from './world';

/** What the outcome topic's sample subscription has carried, as an HR/ITSM subscriber reads it. */
export interface OutcomeListener {
  /** Every message received so far, in arrival order. */
  received: ServiceBusReceivedMessage[];
  /** The outcome events about one event, oldest first. */
  about(eventId: string): OutcomeEvent[];
  /** Waits for the outcome event about `eventId` announcing `outcome`. */
  announced(eventId: string, outcome: OutcomeEvent['outcome']): Promise<OutcomeEvent>;
  close(): Promise<void>;
}

/** Subscribes to the world's outcome topic with the real SDK (receive and delete). */
export function listenToOutcomes(world: World): OutcomeListener {
  const client = new ServiceBusClient(world.serviceBus.connectionString);
  const receiver: ServiceBusReceiver = client.createReceiver(OUTCOME_TOPIC, OUTCOME_SUBSCRIPTION, {
    receiveMode: 'receiveAndDelete',
  });
  const received: ServiceBusReceivedMessage[] = [];
  receiver.subscribe({
    processMessage: (message) => {
      received.push(message);
      return Promise.resolve();
    },
    processError: () => Promise.resolve(),
  });
  const about = (eventId: string) =>
    received.map((m) => m.body as OutcomeEvent).filter((o) => o.data.event.id === eventId);
  return {
    received,
    about,
    announced: (eventId, outcome) =>
      waitFor(`the ${outcome} outcome of ${eventId} on the topic`, () =>
        about(eventId).find((o) => o.outcome === outcome),
      ),
    close: async () => {
      await receiver.close();
      await client.close();
    },
  };
}
