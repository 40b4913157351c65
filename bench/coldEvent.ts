/**
 * Child process of the cold-start benchmark: loads the function module the way the Functions host
 * does, then runs one departure through the registered handler's code path (cold event), then a
 * second one (warm event). Writes `cold-done` on stdout the moment the first revocation is
 * verified, and a JSON line with the warm event's latency at the end. Settings come from the
 * environment the parent sets (local stand-ins).
 *
 *   node dist/bench/coldEvent.js USER_UPN_COLD USER_UPN_WARM
 */
// The module the host loads (package.json "main"): settings are validated and clients built here.
import '../functions/index';
import { InvocationContext } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { createQueueHandler } from '../shared/adapters/functionHandler';
import { getRuntime } from '../shared/app/runtime';

async function runDeparture(upn: string): Promise<void> {
  const handler = createQueueHandler(getRuntime, 'employeeLeaving');
  let verified = false;
  const id = `cold-${randomUUID()}`;
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: 'employeeLeaving',
    triggerMetadata: { messageId: id, deliveryCount: 1, applicationProperties: {} },
    logHandler: (_level, ...args) => {
      const text = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
      if (text.startsWith('Event processed') && /"outcome":"succeeded"/.test(text)) {
        verified = /"verified":true/.test(text);
      }
    },
  });
  await handler(
    {
      specversion: '1.0',
      id,
      source: '/bench/cold',
      type: 'employee.leaving',
      data: { user: upn },
    },
    context,
  );
  if (!verified) throw new Error(`the departure of ${upn} did not end verified`);
}

async function main(): Promise<void> {
  const [coldUser, warmUser] = process.argv.slice(2);
  if (!coldUser || !warmUser) throw new Error('usage: coldEvent.js COLD_UPN WARM_UPN');
  await runDeparture(coldUser);
  process.stdout.write('cold-done\n');
  const started = performance.now();
  await runDeparture(warmUser);
  const warmEventMs = performance.now() - started;
  process.stdout.write(`${JSON.stringify({ warmEventMs })}\n`);
  await getRuntime().close();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
