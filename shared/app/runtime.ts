import {
  AzureCliCredential,
  AzureDeveloperCliCredential,
  ChainedTokenCredential,
  ManagedIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import type { ServiceBusClient } from '@azure/service-bus';
import { TableAuditLog, TableTimelineStore, createTableClient } from '../adapters/tableAuditLog';
import { loadConfig, requireServiceBus, type AppConfig } from './config';
import { boundedCredential } from '../adapters/deadline';
import { GraphDirectory } from '../adapters/graphDirectory';
import type { Scheduler } from '../core/messaging';
import { OffboardingService } from '../core/offboard';
import type { AuditLog, Directory, FinalRecordSink, TimelineStore } from '../core/ports';
import { createImmutableAuditSink } from '../adapters/immutableAuditLog';
import { createOutcomeTopicSink } from '../adapters/outcomeTopic';
import { TableGuardrailStore } from '../adapters/tableGuardrailStore';
import { SharedGuardrail, type GuardrailStore } from '../core/guardrail';
import { QueueProcessor } from '../core/queueProcessing';
import type { WatchDeps } from '../core/signInWatchRun';
import { ServiceBusScheduler, createServiceBusClient } from '../adapters/serviceBusScheduler';
import { createWritePacer, reportingThrottles, type PacerWithFeedback } from '../pacing';

/** Everything a function or the command line needs, built once per process from the settings. */
export interface Runtime {
  config: AppConfig;
  directory: Directory;
  audit: AuditLog;
  /** The person timelines (in the audit table). */
  timelines: TimelineStore;
  scheduler: Scheduler;
  offboarding: OffboardingService;
  queueProcessor: QueueProcessor;
  /** The sign-in watch's dependencies (its checks arrive on the departures queue). */
  signInWatch: WatchDeps;
  /** Each route's blast-radius guardrail record (the `offboard guardrail` commands use it). */
  guardrailStore: GuardrailStore;
  /** Told of every final record: the immutable audit log, then the outcome topic. */
  finalSinks: readonly FinalRecordSink[];
  /** The Graph write pacer (its stats for diagnostics and the benchmark). */
  pacer: PacerWithFeedback;
  /** The Service Bus client, once something needed it. */
  serviceBus(): ServiceBusClient;
  /**
   * Readies what the first final record needs (the sinks' SDKs and connections) in the
   * background; the first call starts it, later ones return the same promise. Never rejects.
   */
  warmUp(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The app's identity. In Azure always the managed identity (user-assigned when AZURE_CLIENT_ID is
 * set); a developer's own sign-in only when GRAPH_CREDENTIAL=developer says so explicitly.
 */
export function createCredential(config: AppConfig): TokenCredential {
  if (config.graph.credential === 'developer') {
    return new ChainedTokenCredential(new AzureCliCredential(), new AzureDeveloperCliCredential());
  }
  const clientId = config.graph.managedIdentityClientId;
  return clientId === undefined
    ? new ManagedIdentityCredential()
    : new ManagedIdentityCredential({ clientId });
}

export interface RuntimeOptions {
  /** Fail now unless Service Bus settings are present (the functions need them to retry). */
  requireServiceBus?: boolean;
  /** Use this identity instead of the app's (ops commands act as the person running them). */
  credential?: TokenCredential;
}

export function createRuntime(
  config: AppConfig = loadConfig(),
  options: RuntimeOptions = {},
): Runtime {
  const { serviceBus: target } = config;
  if (options.requireServiceBus) requireServiceBus(config);
  // Every token request is bounded: a managed identity endpoint that never answers ends the wait.
  const credential = boundedCredential(
    options.credential ?? createCredential(config),
    options.credential === undefined ? 'the managed identity' : 'your sign-in',
  );
  const auditTable = createTableClient(config.audit, credential);
  const audit = new TableAuditLog(auditTable);
  const timelines = new TableTimelineStore(auditTable);
  // One Graph write budget for every instance, kept in the audit storage account; 429s and the
  // throttle percentage Graph reports slow every instance down.
  const pacer = createWritePacer({
    settings: config.pacing,
    store: { kind: 'table', table: auditTable },
  });
  const graph = new GraphDirectory({
    config: config.graph,
    credential,
    onThrottleLimit: (usedFraction) => pacer.reportUsage(usedFraction),
  });
  const directory = reportingThrottles(graph, pacer);

  // Service Bus is connected on first use: `offboard audit` never needs it.
  let client: ServiceBusClient | undefined;
  let serviceBusScheduler: ServiceBusScheduler | undefined;
  const serviceBus = () => (client ??= createServiceBusClient(target, credential));
  const lazyScheduler = () => (serviceBusScheduler ??= new ServiceBusScheduler(serviceBus()));
  const scheduler: Scheduler = {
    schedule: (queue, message, at) => lazyScheduler().schedule(queue, message, at),
    cancel: (queue, sequenceNumber) => lazyScheduler().cancel(queue, sequenceNumber),
  };

  const outcomeTopic = createOutcomeTopicSink(config, serviceBus);
  const finalSinks = [createImmutableAuditSink(config, credential), outcomeTopic].filter(
    (sink): sink is FinalRecordSink => sink !== undefined,
  );

  // The blast-radius guardrail counts across instances in a table of its own (operators write
  // their decisions there; the audit table they only read).
  const guardrailStore = new TableGuardrailStore(
    createTableClient({ ...config.audit, tableName: config.guardrail.tableName }, credential),
  );

  const offboarding = new OffboardingService({
    directory,
    audit,
    timelines,
    scheduler,
    queues: config.queues,
    policy: config.policy,
    retry: config.retry,
    pacer,
    finalSinks,
    signInWatch: config.signInWatch,
    guardrail: new SharedGuardrail(guardrailStore, config.guardrail.limits, undefined, {
      percent: config.guardrail.percentOfEnabledUsers,
      countEnabledUsers: () => directory.countEnabledUsers(),
    }),
  });
  const queueProcessor = new QueueProcessor({
    offboarding,
    scheduler,
    queues: config.queues,
    retry: config.retry,
  });
  // The sign-in watch reads the log directly (its reads are not Graph writes: not paced).
  const signInWatch: WatchDeps = {
    audit,
    timelines,
    signIns: graph,
    scheduler,
    queue: config.queues.employeeLeaving,
    settings: config.signInWatch,
    announce: (event) => outcomeTopic.publish(event),
  };
  // A sink that cannot warm up says so when a record reaches it; the warm-up only saves time.
  let warming: Promise<void> | undefined;
  const warmUp = () =>
    (warming ??= Promise.allSettled(
      finalSinks.map((sink) => Promise.resolve().then(() => sink.warmUp?.())),
    ).then(() => undefined));
  return {
    config,
    directory,
    audit,
    timelines,
    scheduler,
    offboarding,
    queueProcessor,
    signInWatch,
    guardrailStore,
    finalSinks,
    pacer,
    serviceBus,
    warmUp,
    close: async () => {
      await serviceBusScheduler?.close();
      await client?.close();
    },
  };
}

let shared: Runtime | undefined;

/** The process-wide runtime: settings are validated on first use and the SDK clients reused. */
export function getRuntime(): Runtime {
  shared ??= createRuntime(loadConfig(), { requireServiceBus: true });
  return shared;
}
