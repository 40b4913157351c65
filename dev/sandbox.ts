/**
 * The local sandbox (`npm start`): every part of the system on this machine, the same function
 * handlers fed by a local runner. A development harness: production runs on Azure Functions.
 *
 *   npm start            start, send the samples, print what happened, keep running (Ctrl-C stops)
 *   npm start -- --once  the same, then stop (used by the tests)
 */
import { ServiceBusClient } from '@azure/service-bus';
import { isFinal, latestRecordFor } from '../shared/core/auditRecords';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadConfig } from '../shared/app/config';
import {
  SIGNIN_AFTER_CUTOFF,
  createQueueHandler,
  queueBindings,
  receivedEvent,
} from '../shared/adapters/functionHandler';
import { InvocationContext } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { format } from 'node:util';
import { describeFinding, watchMessage } from '../shared/core/signInWatch';
import { salvageEventId } from '../shared/core/events';
import { escapeUnsafe } from '../cli/output';
import { EVENT_TABLE_HEADER, eventRow, tableRow } from './eventTable';
import { GraphPermissions } from '../shared/adapters/graphPermissions';
import type { AuditRecord } from '../shared/core/ports';
import { QUEUE_POLICY } from '../shared/core/queuePolicy';
import { createRuntime } from '../shared/app/runtime';
import { freePort, startAzuriteTable } from './azurite';
import { BOB_UPN, BREAKGLASS_UPN, startGraphStandIn } from './graph-standin/index';
import { startManagedIdentityStandIn } from './identity-standin/index';
import { startLocalRunner, type LogLine, type RunnerBinding } from './localRunner';
import { startServiceBusStandIn } from './servicebus-standin/index';

const ROOT = join(__dirname, '..', '..');
const SAMPLES = join(ROOT, 'samples');
const ENV_FILE = process.env.SANDBOX_ENV_FILE ?? join(ROOT, '.local', 'sandbox.env');
const QUEUES = { employeeLeaving: 'employee-leaving', mfaEnabled: 'mfa-enabled' };
/** Seconds ahead the demonstration departure is scheduled. */
const DEMO_LEAVE_DELAY_SECONDS = 60;
/** The sandbox's MFA guardrail limit, and the runaway feed that trips it. */
const DEMO_MFA_LIMIT = 3;
const RUNAWAY_FEED = 4;
const OUTCOME_TOPIC = 'offboarding-outcomes';
const OUTCOME_SUBSCRIPTION = 'hr-itsm';

const out = (line = '') => process.stdout.write(line + '\n');

/** Nothing more happens to it until its leave date or an operator: final, or scheduled. */
function hasSettled(record: AuditRecord | undefined): boolean {
  if (record === undefined || record.claimedBy !== undefined) return false;
  return isFinal(record) || record.outcome === 'scheduled';
}

/** A terminal's width; a pipe or a log file takes whole lines. */
function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}

/** What is left of it after the time that starts a row reported as it ends. */
function liveWidth(): number | undefined {
  const width = terminalWidth();
  return width === undefined ? undefined : width - 'hh:mm:ss  '.length;
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  const verbose = process.argv.includes('--verbose');
  out('Starting the local sandbox (a development harness; production runs on Azure Functions)...');

  const azurite = await startAzuriteTable();
  const serviceBus = await startServiceBusStandIn({
    queues: Object.values(QUEUES).map((name) => ({
      name,
      maxDeliveryCount: QUEUE_POLICY.maxDeliveryCount,
      lockDurationMs: QUEUE_POLICY.lockDurationMs,
      duplicateDetectionWindowMs: QUEUE_POLICY.duplicateDetectionWindowMs,
    })),
    // The outcome topic with the sample subscription infra deploys.
    topics: [
      {
        name: OUTCOME_TOPIC,
        duplicateDetectionWindowMs: QUEUE_POLICY.duplicateDetectionWindowMs,
        subscriptions: [{ name: OUTCOME_SUBSCRIPTION }],
      },
    ],
  });
  const graphPort = await freePort();
  const graph = await startGraphStandIn({
    port: graphPort,
    audience: `https://127.0.0.1:${graphPort}`,
  });
  const identity = await startManagedIdentityStandIn({ roles: Object.values(GraphPermissions) });

  const env: Record<string, string> = {
    ...identity.envFor(),
    GRAPH_ENDPOINT: graph.url,
    AUDIT_TABLE_CONNECTION_STRING: azurite.connectionString,
    AUDIT_TABLE_NAME: 'OffboardingAudit',
    ServiceBusConnection: serviceBus.connectionString,
    EMPLOYEE_LEAVING_QUEUE: QUEUES.employeeLeaving,
    MFA_ENABLED_QUEUE: QUEUES.mfaEnabled,
    PROTECTED_USERS: BREAKGLASS_UPN,
    DRY_RUN: 'false',
    RETRY_BASE_DELAY_SECONDS: '5',
    RETRY_MAX_DELAY_SECONDS: '60',
    // Low enough to watch the blast-radius guardrail trip on a small runaway MFA feed.
    GUARDRAIL_MFA_PER_WINDOW: String(DEMO_MFA_LIMIT),
    OUTCOME_TOPIC,
    // The sign-in watch after departures (off by default in Azure): shown once below.
    SIGNIN_WATCH_ENABLED: 'true',
    // Lets `offboard` say "the sandbox is not running" when these stand-ins are gone.
    OFFBOARD_SANDBOX: '1',
  };
  Object.assign(process.env, env);
  await mkdir(dirname(ENV_FILE), { recursive: true });
  await writeFile(
    ENV_FILE,
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
    { mode: 0o600 },
  );

  const runtime = createRuntime(loadConfig(env), { requireServiceBus: true });
  const logs: LogLine[] = [];
  // After the summary, each event that ends (the leave date, anything sent by `offboard`) gets
  // its row as it ends.
  let live = false;
  const reported = new Set<string>();
  const reportEnded = async (eventId: string) => {
    const record = await latestRecordFor(runtime.audit, eventId).catch(() => undefined);
    if (!live || record === undefined || !hasSettled(record)) return;
    const key = `${record.identityKey}:${record.outcome}:${record.attempts}`;
    if (reported.has(key)) return;
    reported.add(key);
    out(`${new Date().toISOString().slice(11, 19)}  ${eventRow(eventId, record, liveWidth())}`);
  };
  const reporting = (binding: RunnerBinding): RunnerBinding => ({
    ...binding,
    handler: async (message, context) => {
      const { body } = receivedEvent(message, context);
      const eventId =
        salvageEventId(body) ?? `message:${String(context.triggerMetadata?.messageId)}`;
      try {
        await binding.handler(message, context);
      } finally {
        await reportEnded(eventId);
      }
    },
  });
  const runner = startLocalRunner({
    connectionString: serviceBus.connectionString,
    bindings: queueBindings(() => runtime, QUEUES).map(reporting),
    maxConcurrentCalls: 4,
    onLog: (line) => {
      logs.push(line);
      if (verbose) out(`  [${line.functionName}] ${line.level}: ${line.text}`);
    },
  });

  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    out('\nStopping the sandbox...');
    await runner.stop();
    await runtime.close();
    await Promise.all([serviceBus.stop(), graph.stop(), identity.stop(), azurite.stop()]);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  // Send the sample events, each to the queue its type belongs on.
  const client = new ServiceBusClient(serviceBus.connectionString);
  const files = (await readdir(SAMPLES)).filter((f) => f.endsWith('.json')).sort();
  const eventIds: string[] = [];
  for (const file of files) {
    const body = JSON.parse(await readFile(join(SAMPLES, file), 'utf8')) as {
      id: string;
      type: string;
    };
    const queue = body.type.endsWith('mfa.enabled') ? QUEUES.mfaEnabled : QUEUES.employeeLeaving;
    const sender = client.createSender(queue);
    await sender.sendMessages({
      body,
      messageId: `sample-${file}`,
      contentType: 'application/json',
    });
    await sender.close();
    eventIds.push(body.id);
  }
  // A departure with a leave date, to show scheduling: it fires while the sandbox runs.
  const leaveAt = new Date(Date.now() + DEMO_LEAVE_DELAY_SECONDS * 1000).toISOString();
  const demo = {
    specversion: '1.0',
    id: 'sample-leaver-with-leave-date',
    source: '/hr/workday',
    type: 'employee.leaving',
    datacontenttype: 'application/json',
    data: { user: BOB_UPN, disableAccount: true, effectiveAt: leaveAt, reason: 'leave date demo' },
  };
  const leavingSender = client.createSender(QUEUES.employeeLeaving);
  await leavingSender.sendMessages({
    body: demo,
    messageId: 'sample-leave-date',
    contentType: 'application/json',
  });
  await leavingSender.close();
  eventIds.push(demo.id);
  out(
    `Sent ${eventIds.length} sample events: samples/*.json and a departure with a leave date, ${leaveAt}.`,
  );

  const deadline = Date.now() + 60_000;
  let records: Array<AuditRecord | undefined> = [];
  while (Date.now() < deadline) {
    records = await Promise.all(eventIds.map((id) => latestRecordFor(runtime.audit, id)));
    const deadLettered =
      serviceBus.stats(QUEUES.employeeLeaving).deadLettered +
      serviceBus.stats(QUEUES.mfaEnabled).deadLettered;
    const permanent = records.filter(
      (r) => r !== undefined && (r.outcome === 'refused' || r.retryable === false),
    ).length;
    if (records.every(hasSettled) && deadLettered >= permanent) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }

  out('\nWhat happened to each event:');
  out(tableRow(EVENT_TABLE_HEADER, terminalWidth()));
  for (const [i, id] of eventIds.entries()) out(eventRow(id, records[i], terminalWidth()));
  for (const record of records)
    if (record !== undefined && hasSettled(record))
      reported.add(`${record.identityKey}:${record.outcome}:${record.attempts}`);
  await showGuardrail(graph, client, runtime);
  await showSignInWatch(graph, runtime, logs);
  await showOutcomes(client);

  for (const queue of Object.values(QUEUES)) {
    const stats = serviceBus.stats(queue);
    out(
      `Queue ${queue}: ${stats.active} waiting, ${stats.scheduled} scheduled, ${stats.deadLettered} dead-lettered.`,
    );
  }

  if (once) {
    await client.close();
    await stop(0);
    return;
  }
  await client.close();
  out(`
The sandbox keeps running. In another terminal (settings are in .local/sandbox.env):
  npm run --silent offboard:sandbox -- process --file samples/02-mfa-bob.json
  npm run --silent offboard:sandbox -- audit --user alice@contoso.com
  npm run --silent offboard:sandbox -- dlq list --queue employee-leaving
  npm run --silent offboard:sandbox -- dlq replay --queue employee-leaving --dry-run
  npm run --silent offboard:sandbox -- enqueue --type mfa.enabled --csv samples/mfa-wave.csv
  npm run --silent offboard:sandbox -- guardrail status
  npm run --silent offboard:sandbox -- guardrail release --kind mfa --reason "checked the feed"
  npm run --silent offboard:sandbox -- report --since 1h
  npm run --silent offboard:sandbox -- audit verify --since 1h
The departure scheduled for ${leaveAt} runs on its own; look it up with
  npm run --silent offboard:sandbox -- audit --event ${demo.id}
Each event that ends from now on is shown here as it ends. Press Ctrl-C to stop.
`);
  out(`time      ${tableRow(EVENT_TABLE_HEADER, liveWidth())}`);
  live = true;
}

/**
 * A runaway MFA feed after the samples: the first events run up to the sandbox's limit, the rest
 * are held (nothing written to Graph) and the GuardrailTripped alert line is logged.
 */
async function showGuardrail(
  graph: Awaited<ReturnType<typeof startGraphStandIn>>,
  client: ServiceBusClient,
  runtime: ReturnType<typeof createRuntime>,
): Promise<void> {
  const sender = client.createSender(QUEUES.mfaEnabled);
  const ids: string[] = [];
  for (let i = 1; i <= RUNAWAY_FEED; i++) {
    const user = graph.addUser({
      id: `7a7a0000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      userPrincipalName: `runaway${i}@contoso.com`,
    });
    const id = `sample-runaway-mfa-${i}`;
    ids.push(id);
    await sender.sendMessages({
      body: {
        specversion: '1.0',
        id,
        source: '/hr/mis-configured-feed',
        type: 'mfa.enabled',
        datacontenttype: 'application/json',
        data: { user: user.userPrincipalName },
      },
      messageId: id,
      contentType: 'application/json',
    });
  }
  await sender.close();
  const deadline = Date.now() + 30_000;
  let records: Array<AuditRecord | undefined> = [];
  while (Date.now() < deadline) {
    records = await Promise.all(ids.map((id) => latestRecordFor(runtime.audit, id)));
    if (records.every(hasSettled)) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const ran = records.filter((r) => r?.outcome === 'succeeded').length;
  const held = records.filter((r) => r?.outcome === 'held');
  out(
    `\nGuardrail: a runaway feed of ${RUNAWAY_FEED} more mfa.enabled events, the sandbox's limit ${DEMO_MFA_LIMIT} per 60 min\n(sample-mfa-bob counted first): ${ran} ran, ${held.length} held (nothing written to Graph for them):`,
  );
  out(tableRow(EVENT_TABLE_HEADER, terminalWidth()));
  for (const [i, id] of ids.entries()) out(eventRow(id, records[i], terminalWidth()));
}

/**
 * One check of the sign-in watch: Alice's departure scheduled its checks an hour and a day after
 * her cut-off. The sandbox puts a sign-in of hers after the cut-off in the Graph stand-in's log and
 * hands her first check to the real handler with the watch's clock at its due time (in Azure the
 * scheduled message arrives then).
 */
async function showSignInWatch(
  graph: Awaited<ReturnType<typeof startGraphStandIn>>,
  runtime: ReturnType<typeof createRuntime>,
  logs: LogLine[],
): Promise<void> {
  const record = await latestRecordFor(runtime.audit, 'sample-leaver-alice');
  const watch = record?.signInWatch;
  const check = watch?.checks[0];
  if (record === undefined || watch === undefined || check === undefined) {
    out('\nSign-in watch: no watch was planned for sample-leaver-alice.');
    return;
  }
  const cutoff = Date.parse(watch.cutoffAt);
  graph.addSignIn({
    userId: record.objectId ?? '',
    createdDateTime: new Date(cutoff + 20 * 60_000).toISOString(),
    appDisplayName: 'Salesforce',
    ipAddress: '198.51.100.23',
    clientAppUsed: 'Mobile Apps and Desktop clients',
    caeToken: false,
  });
  const message = watchMessage(record, 0, watch.from);
  const lines: string[] = [];
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: QUEUES.employeeLeaving,
    triggerMetadata: {
      messageId: message.messageId,
      deliveryCount: 1,
      applicationProperties: message.applicationProperties,
    },
    logHandler: (level, ...args) => {
      const text = format(...args);
      lines.push(text);
      logs.push({ functionName: 'employeeLeaving', level, text });
    },
  });
  runtime.signInWatch.now = () => new Date(check.dueAt);
  try {
    await createQueueHandler(() => runtime, 'employeeLeaving')(message.body, context);
  } finally {
    delete runtime.signInWatch.now;
  }
  const after = await latestRecordFor(runtime.audit, 'sample-leaver-alice');
  const finding = after?.signInWatch?.checks[0]?.result;
  const first = finding?.signIns?.[0];
  out(
    `\nSign-in watch: ${watch.checks.length} checks of sample-leaver-alice scheduled (cut-off ${watch.cutoffAt}); the first, due ${check.dueAt}, run now with the watch's clock at that time:`,
  );
  out(escapeUnsafe(`  ${describeFinding(finding)}`));
  if (first !== undefined)
    out(
      escapeUnsafe(
        `  ${first.at} ${first.app ?? '?'} from ${first.ipAddress ?? '?'} (${first.clientAppUsed ?? '?'}, CAE token: ${first.caeToken === undefined ? 'not stated' : first.caeToken ? 'yes' : 'no'})`,
      ),
    );
  if (lines.some((l) => l.startsWith(SIGNIN_AFTER_CUTOFF)))
    out('  the SignInAfterCutoff line was logged (the signin-after-cutoff alert fires on it)');
}

interface OutcomeEvent {
  type: string;
  data: {
    outcome: string;
    event?: { id?: string };
    user?: { given?: string };
    accessCutoff?: { caeAppsBy?: string; otherAppsBy?: string };
  };
}

/** What an HR or ITSM subscriber of the outcome topic receives (peeked, left for them). */
async function showOutcomes(client: ServiceBusClient): Promise<void> {
  const receiver = client.createReceiver(OUTCOME_TOPIC, OUTCOME_SUBSCRIPTION);
  const published = (await receiver.peekMessages(100)).map((m) => m.body as OutcomeEvent);
  await receiver.close();
  const counts = new Map<string, number>();
  for (const e of published) counts.set(e.data.outcome, (counts.get(e.data.outcome) ?? 0) + 1);
  out(
    `\nOutcome events on topic ${OUTCOME_TOPIC} (subscription ${OUTCOME_SUBSCRIPTION}): ${published.length} (${[...counts].map(([o, n]) => `${n} ${o}`).join(', ')}).`,
  );
  // One that says when access ends (a refusal or a held event does not).
  const first = published.find((e) => e.data.accessCutoff !== undefined) ?? published[0];
  if (first === undefined) return;
  out(
    escapeUnsafe(
      `One of them: ${first.type} for ${first.data.event?.id ?? '?'} (${first.data.user?.given ?? '?'}); its fields: docs/outcomes.md.`,
    ),
  );
  const { caeAppsBy, otherAppsBy } = first.data.accessCutoff ?? {};
  const ends = [
    caeAppsBy === undefined ? undefined : `in CAE-aware apps by ${caeAppsBy}`,
    otherAppsBy === undefined ? undefined : `in other apps by ${otherAppsBy}`,
  ].filter((part) => part !== undefined);
  if (ends.length > 0) out(escapeUnsafe(`  access ends ${ends.join(', ')}`));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `sandbox failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
