/**
 * Child process of the cold-start benchmark: loads a function module the way the Functions host
 * does (dist/functions/index.js or the deployment bundle dist/deploy/main.js), then runs one
 * departure through the function it registered, the way the host's worker invokes it (cold event),
 * then a second one (warm event). Writes `cold-done` on stdout the moment the first revocation is
 * verified, and a JSON line with the warm event's latency at the end. Settings come from the
 * environment the parent sets (local stand-ins).
 *
 *   node dist/bench/coldEvent.js MODULE_PATH USER_UPN_COLD USER_UPN_WARM
 *
 * The host supplies `@azure/functions-core` to the app (the bundle keeps it external); here a
 * stand-in of it records what the module registers, exactly as much of it as @azure/functions
 * uses: setProgrammingModel, registerFunction, registerHook and log. The invocation then goes
 * through the app's own copy of @azure/functions (its InvocationModel builds the real
 * InvocationContext from RPC-shaped trigger data), so the bundle's handler is reached unchanged.
 * As under the host, the module finds `@azure/functions-core` and so starts its warm-up
 * (Runtime.warmUp) after registering; the departure follows at once, so the warm-up's work counts
 * in the cold event here, where the host would give it the time it takes to start its listeners.
 */
import Module from 'node:module';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';

interface RpcTypedData {
  string?: string;
  json?: string;
  int?: number;
}
interface CoreInvocationContext {
  invocationId: string;
  state: string;
  metadata: { name: string; bindings: Record<string, { type: string; direction: string }> };
  request: {
    triggerMetadata: Record<string, RpcTypedData>;
    inputData: { name: string; data: RpcTypedData }[];
  };
  log(level: string, category: string, message: string): void;
}
interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], handler: unknown): Promise<unknown>;
}
interface ProgrammingModel {
  getInvocationModel(coreCtx: CoreInvocationContext): InvocationModel;
}
type CoreMetadata = CoreInvocationContext['metadata'];

const registered = new Map<string, { metadata: CoreMetadata; handler: unknown }>();
let programmingModel: ProgrammingModel | undefined;
const hostLog: string[] = [];

const coreApiStandIn = {
  version: 'bench',
  hostVersion: '4.0.0',
  setProgrammingModel: (model: ProgrammingModel) => (programmingModel = model),
  getProgrammingModel: () => programmingModel,
  registerFunction: (metadata: CoreMetadata, handler: unknown) => {
    registered.set(metadata.name, { metadata, handler });
    return { dispose: () => registered.delete(metadata.name) };
  },
  registerHook: () => ({ dispose: () => undefined }),
  log: (level: string, category: string, message: string) =>
    hostLog.push(`${level} ${category} ${message}`),
};

/** What the host's worker does: `require('@azure/functions-core')` answers with its API. */
function provideCoreApi(): void {
  const loader = Module as unknown as {
    _load(request: string, parent: unknown, isMain: boolean): unknown;
  };
  const load = loader._load.bind(loader);
  loader._load = (request, parent, isMain) =>
    request === '@azure/functions-core' ? coreApiStandIn : load(request, parent, isMain);
}

async function runDeparture(upn: string): Promise<void> {
  const functionName = 'employeeLeaving';
  const target = registered.get(functionName);
  if (target === undefined || programmingModel === undefined) {
    throw new Error(`the module registered no ${functionName} function`);
  }
  const trigger = Object.entries(target.metadata.bindings).find(([, b]) => b.direction === 'in');
  if (trigger === undefined) throw new Error(`${functionName} has no trigger binding`);
  const id = `cold-${randomUUID()}`;
  const event = {
    specversion: '1.0',
    id,
    source: '/bench/cold',
    type: 'employee.leaving',
    data: { user: upn },
  };
  let verified = false;
  let summary = 'no "Event processed" line';
  const coreCtx: CoreInvocationContext = {
    invocationId: randomUUID(),
    state: 'invocation',
    metadata: target.metadata,
    request: {
      // As the Service Bus extension sends them (PascalCase; the library camel-cases them).
      triggerMetadata: {
        MessageId: { string: id },
        DeliveryCount: { int: 1 },
        ApplicationProperties: { json: '{}' },
      },
      inputData: [{ name: trigger[0], data: { json: JSON.stringify(event) } }],
    },
    log: (_level, category, message) => {
      if (category !== 'user') return;
      // util.format of the handler's summary object, as the worker writes it.
      if (message.startsWith('Event processed')) {
        summary = message;
        verified = /outcome: 'succeeded'/.test(message) && /verified: true/.test(message);
      }
    },
  };
  const invocation = programmingModel.getInvocationModel(coreCtx);
  const { context, inputs } = await invocation.getArguments();
  await invocation.invokeFunction(context, inputs, target.handler);
  if (!verified) throw new Error(`the departure of ${upn} did not end verified: ${summary}`);
}

async function main(): Promise<void> {
  const [modulePath, coldUser, warmUser] = process.argv.slice(2);
  if (!modulePath || !coldUser || !warmUser) {
    throw new Error('usage: coldEvent.js MODULE_PATH COLD_UPN WARM_UPN');
  }
  provideCoreApi();
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded as the host loads it
  require(resolve(modulePath));
  await runDeparture(coldUser);
  process.stdout.write('cold-done\n');
  const started = performance.now();
  await runDeparture(warmUser);
  const warmEventMs = performance.now() - started;
  process.stdout.write(`${JSON.stringify({ warmEventMs })}\n`);
}

main().then(
  // Open clients (Service Bus, sockets) would keep the process alive; the figures are taken.
  () => process.exit(0),
  (error: unknown) => {
    console.error(error, hostLog.slice(-20).join('\n'));
    process.exit(1);
  },
);
