/**
 * Benchmark (prints figures; asserts nothing): events per second through the real handlers, SDKs
 * and local stand-ins, and the cold load time of a function module.
 *
 *   npm run bench [-- --events 2000 --concurrency 8]
 */
import { ServiceBusClient, type ServiceBusMessage } from '@azure/service-bus';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startAzuriteTable } from '../dev/azurite';
import { startGraphStandIn } from '../dev/graph-standin';
import { startManagedIdentityStandIn } from '../dev/identity-standin';
import { startLocalRunner } from '../dev/localRunner';
import { startServiceBusStandIn } from '../dev/servicebus-standin';
import { loadConfig } from '../shared/config';
import { createQueueHandler } from '../shared/functionHandler';
import { GraphPermissions } from '../shared/graph/permissions';
import { createRuntime } from '../shared/runtime';

const ROOT = join(__dirname, '..', '..');

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function coldLoadMs(env: Record<string, string>): number {
  const runs: number[] = [];
  for (let i = 0; i < 7; i++) {
    const started = process.hrtime.bigint();
    const result = spawnSync(
      process.execPath,
      ['-e', "require('./dist/functions/employeeLeaving.js')"],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: 'ignore',
      },
    );
    if (result.status !== 0) throw new Error('loading the function module failed');
    runs.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return median(runs);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '8' },
    },
  });
  const events = Number(values.events);
  const concurrency = Number(values.concurrency);

  const azurite = await startAzuriteTable();
  const serviceBus = await startServiceBusStandIn({
    queues: [{ name: 'mfa-enabled', maxDeliveryCount: 5 }],
  });
  const graphPort = await freePort();
  const graph = await startGraphStandIn({
    port: graphPort,
    audience: `https://127.0.0.1:${graphPort}`,
  });
  const identity = await startManagedIdentityStandIn({ roles: Object.values(GraphPermissions) });
  Object.assign(process.env, identity.envFor());
  const env = {
    GRAPH_ENDPOINT: graph.url,
    AUDIT_TABLE_CONNECTION_STRING: azurite.connectionString,
    ServiceBusConnection: serviceBus.connectionString,
  };
  const runtime = createRuntime(loadConfig(env), { requireServiceBus: true });
  const users = Array.from({ length: events }, (_, i) =>
    graph.addUser({
      id: `be000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      userPrincipalName: `bench${i}@contoso.com`,
    }),
  );

  let done = 0;
  let finished: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  const runner = startLocalRunner({
    connectionString: serviceBus.connectionString,
    bindings: [
      {
        functionName: 'mfaEnabled',
        queueName: 'mfa-enabled',
        handler: createQueueHandler(() => runtime, 'mfaEnabled'),
      },
    ],
    maxConcurrentCalls: concurrency,
    onSettled: ({ settlement }) => {
      if (settlement === 'complete' && ++done === events) finished();
    },
  });

  const client = new ServiceBusClient(serviceBus.connectionString);
  const sender = client.createSender('mfa-enabled');
  const messages: ServiceBusMessage[] = users.map((user, i) => ({
    body: {
      specversion: '1.0',
      id: `bench-${i}`,
      source: '/bench',
      type: 'mfa.enabled',
      data: { user: user.userPrincipalName },
    },
    contentType: 'application/json',
  }));
  const started = Date.now();
  for (let i = 0; i < messages.length; i += 100)
    await sender.sendMessages(messages.slice(i, i + 100));
  await allDone;
  const seconds = (Date.now() - started) / 1000;
  const graphRequests = graph.requests.length;

  await sender.close();
  await client.close();
  await runner.stop();
  await runtime.close();
  await Promise.all([serviceBus.stop(), graph.stop(), identity.stop(), azurite.stop()]);

  const cold = coldLoadMs({
    AUDIT_TABLE_ENDPOINT: 'https://acct.table.core.windows.net',
    ServiceBusConnection__fullyQualifiedNamespace: 'ns.servicebus.windows.net',
  });
  console.log(`events:                 ${events} mfa.enabled, maxConcurrentCalls ${concurrency}`);
  console.log(
    `throughput:             ${(events / seconds).toFixed(1)} events/s (${seconds.toFixed(1)} s)`,
  );
  console.log(
    `graph requests / event: ${(graphRequests / events).toFixed(2)} (read, revoke, verify)`,
  );
  console.log(
    `graph writes / s:       ${(events / seconds).toFixed(1)} (Graph allows 20/s per app per tenant for identity writes)`,
  );
  console.log(
    `cold module load:       ${cold.toFixed(0)} ms median of 7 (dist/functions/employeeLeaving.js, node ${process.version})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
