import { ServiceBusClient } from '@azure/service-bus';
import { startLocalRunner, type LocalRunner, type LogLine } from '../../dev/localRunner';
import { queueBindings } from '../../shared/adapters/functionHandler';
import type { Runtime } from '../../shared/app/runtime';
import type { World } from './world';

export interface Pipeline {
  runner: LocalRunner;
  client: ServiceBusClient;
  logs: LogLine[];
  settled: Array<{ messageId: string; settlement: 'complete' | 'abandon' }>;
  send(
    queue: 'employee-leaving' | 'mfa-enabled',
    body: unknown,
    messageId?: string,
    properties?: Record<string, string | number | boolean>,
  ): Promise<void>;
  stop(): Promise<void>;
}

/** The function handlers fed from the Service Bus stand-in with the host's settlement semantics. */
export function startPipeline(
  world: World,
  runtime: Runtime = world.runtime,
  maxConcurrentCalls = 8,
): Pipeline {
  const logs: LogLine[] = [];
  const settled: Pipeline['settled'] = [];
  const runner = startLocalRunner({
    connectionString: world.serviceBus.connectionString,
    bindings: queueBindings(() => runtime, runtime.config.queues),
    maxConcurrentCalls,
    onLog: (line) => logs.push(line),
    onSettled: ({ messageId, settlement }) => settled.push({ messageId, settlement }),
  });
  const client = new ServiceBusClient(world.serviceBus.connectionString);
  const senders = new Map<string, ReturnType<ServiceBusClient['createSender']>>();
  return {
    runner,
    client,
    logs,
    settled,
    async send(queue, body, messageId, properties) {
      let sender = senders.get(queue);
      if (!sender) senders.set(queue, (sender = client.createSender(queue)));
      await sender.sendMessages({
        body,
        contentType: 'application/json',
        ...(messageId === undefined ? {} : { messageId }),
        ...(properties === undefined ? {} : { applicationProperties: properties }),
      });
    },
    async stop() {
      await runner.stop();
      await Promise.all([...senders.values()].map((s) => s.close()));
      await client.close();
    },
  };
}
