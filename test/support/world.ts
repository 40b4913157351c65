import { InvocationContext } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { freePort } from '../../dev/azurite';
import { startGraphStandIn, type GraphStandIn } from '../../dev/graph-standin/index';
import { BREAKGLASS_UPN } from '../../dev/graph-standin/index';
import {
  startManagedIdentityStandIn,
  type ManagedIdentityStandIn,
} from '../../dev/identity-standin/index';
import { startServiceBusStandIn, type ServiceBusStandIn } from '../../dev/servicebus-standin/index';
import { loadConfig } from '../../shared/app/config';
import { GraphPermissions } from '../../shared/adapters/graphPermissions';
import { createRuntime, type Runtime } from '../../shared/app/runtime';

export const ALL_GRAPH_ROLES = Object.values(GraphPermissions);

/** The outcome topic every world has, and its sample subscription (infra/modules/servicebus.bicep). */
export const OUTCOME_TOPIC = 'offboarding-outcomes';
export const OUTCOME_SUBSCRIPTION = 'hr-itsm';

export interface CapturedLog {
  level: string;
  text: string;
}

export interface World {
  identity: ManagedIdentityStandIn;
  graph: GraphStandIn;
  serviceBus: ServiceBusStandIn;
  /** The settings the runtime was built from (a fresh audit table per world). */
  env: Record<string, string>;
  runtime: Runtime;
  /** Builds a new runtime with extra settings over `env` (same stand-ins). */
  runtimeWith(overrides: Record<string, string>): Runtime;
  logs: CapturedLog[];
  /**
   * A new member in the Graph stand-in. Tests that expect a verified revocation use their own
   * user: Graph keeps signInSessionsValidFromDateTime in whole seconds, so two revocations of one
   * user within a second cannot be told apart (and are rightly retried).
   */
  newUser(): { id: string; upn: string };
  /** A real InvocationContext as the host would pass for a Service Bus message. */
  context(metadata?: {
    messageId?: string;
    deliveryCount?: number;
    applicationProperties?: Record<string, unknown>;
  }): InvocationContext;
  stop(): Promise<void>;
}

/**
 * The real parts a test needs: managed identity, Graph and Service Bus stand-ins, and the Azurite
 * that the global setup started. Start one world per test file: @azure/identity picks its managed
 * identity endpoint once per module registry.
 */
export async function startWorld(
  overrides: Record<string, string> = {},
  options: { tokenLifetimeSeconds?: number } = {},
): Promise<World> {
  // Tokens living under 300 s are not cached by @azure/identity: role changes then apply at once.
  const identity = await startManagedIdentityStandIn({
    roles: ALL_GRAPH_ROLES,
    tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3600,
  });
  // The token audience follows GRAPH_ENDPOINT, as for a sovereign cloud: the stand-in accepts its own URL.
  const graphPort = await freePort();
  const graph = await startGraphStandIn({
    port: graphPort,
    audience: `https://127.0.0.1:${graphPort}`,
  });
  const serviceBus = await startServiceBusStandIn({
    queues: [
      {
        name: 'employee-leaving',
        maxDeliveryCount: 5,
        lockDurationMs: 5000,
        duplicateDetectionWindowMs: 60_000,
      },
      {
        name: 'mfa-enabled',
        maxDeliveryCount: 5,
        lockDurationMs: 5000,
        duplicateDetectionWindowMs: 60_000,
      },
    ],
    // The outcome topic (OUTCOME_TOPIC default) with the sample subscription infra deploys.
    topics: [
      {
        name: OUTCOME_TOPIC,
        duplicateDetectionWindowMs: 60_000,
        subscriptions: [{ name: OUTCOME_SUBSCRIPTION, maxDeliveryCount: 5, lockDurationMs: 5000 }],
      },
    ],
  });
  Object.assign(process.env, identity.envFor());
  const connectionString = process.env.TEST_AZURITE_CONNECTION_STRING;
  if (!connectionString)
    throw new Error(
      'TEST_AZURITE_CONNECTION_STRING is not set: run through jest with the global setup.',
    );

  const env: Record<string, string> = {
    GRAPH_ENDPOINT: graph.url,
    AUDIT_TABLE_CONNECTION_STRING: connectionString,
    AUDIT_TABLE_NAME: `Audit${randomUUID().replace(/-/g, '').slice(0, 20)}`,
    // Each world its own guardrail (a trip in one test file must not hold another's events).
    GUARDRAIL_TABLE_NAME: `Guardrail${randomUUID().replace(/-/g, '').slice(0, 20)}`,
    ServiceBusConnection: serviceBus.connectionString,
    PROTECTED_USERS: BREAKGLASS_UPN,
    GRAPH_MAX_RETRIES: '0',
    GRAPH_MAX_RETRY_WAIT_SECONDS: '1',
    RETRY_BASE_DELAY_SECONDS: '1',
    RETRY_MAX_DELAY_SECONDS: '2',
    // Behaviour tests drive Graph as hard as they like; test/integration/pacing.test.ts turns it on.
    PACING_WRITES_PER_SECOND: '0',
    // ...and send as many events as they like; test/integration/guardrail.test.ts sets limits.
    GUARDRAIL_DEPARTURES_PER_WINDOW: '100000',
    GUARDRAIL_MFA_PER_WINDOW: '1000000',
    ...overrides,
  };
  const runtimes: Runtime[] = [];
  const runtimeWith = (extra: Record<string, string>) => {
    const runtime = createRuntime(loadConfig({ ...env, ...extra }), { requireServiceBus: true });
    runtimes.push(runtime);
    return runtime;
  };
  const runtime = runtimeWith({});
  const logs: CapturedLog[] = [];
  let users = 0;

  return {
    identity,
    graph,
    serviceBus,
    env,
    runtime,
    runtimeWith,
    logs,
    newUser: () => {
      const n = ++users;
      const user = graph.addUser({
        id: `5e500000-0000-4000-8000-${String(n).padStart(12, '0')}`,
        userPrincipalName: `test.user${n}@contoso.com`,
      });
      return { id: user.id, upn: user.userPrincipalName };
    },
    context: (metadata = {}) =>
      new InvocationContext({
        invocationId: randomUUID(),
        functionName: 'test',
        triggerMetadata: {
          messageId: metadata.messageId ?? randomUUID(),
          deliveryCount: metadata.deliveryCount ?? 1,
          applicationProperties: metadata.applicationProperties ?? {},
        },
        logHandler: (level, ...args) =>
          logs.push({
            level,
            text: args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '),
          }),
      }),
    stop: async () => {
      await Promise.all(runtimes.map((r) => r.close()));
      await Promise.all([graph.stop(), identity.stop(), serviceBus.stop()]);
    },
  };
}

/** A CloudEvents 1.0 event as the HR system sends it. */
export function cloudEvent(
  type: string,
  data: Record<string, unknown>,
  id = `evt-${randomUUID()}`,
): Record<string, unknown> {
  return {
    specversion: '1.0',
    id,
    source: '/hr/workday',
    type,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data,
  };
}
