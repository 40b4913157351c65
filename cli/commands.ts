import { randomUUID } from 'node:crypto';
import { AppMessageIdPrefixes } from '../shared/core/messaging';
import { constants } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ErrorCodes, OffboardingError } from '../shared/core/errors';
import { kindOfType } from '../shared/core/events';
import { RouteNames } from '../shared/core/routes';
import { guardrailOf } from '../shared/core/guardrail';
import { approveWave } from '../shared/core/guardrailOps';
import type { Runtime } from '../shared/app/runtime';
import { recordsOfEvent, recordsOfUser } from './auditLookup';
import { asOperator, CLOCK_SLACK_MS, type LogOpener } from './auditVerify';
import { parseCsv } from './csv';
import { listDeadLetters, replayDeadLetters, type DeadLetterReads } from './deadLetters';
import {
  WAVE_DEPARTURE_SHARE,
  checkWave,
  paceWave,
  planEnqueue,
  sendPlan,
  waveIdOf,
  type ResolveUser,
} from './enqueue';
import { ExitCodes, UsageError } from './exitCodes';
import { operator, progressReporter, type Io } from './io';
import { reinstatementEvent, type ReinstateRequest } from './reinstate';
import { DEFAULT_SINCE, formatReport, parseSince, readReport } from './report';
import { buildEvidence } from './reportEvidence';
import { renderEvidenceHtml } from './reportHtml';
import { buildWaveEffect, formatWaveEffect } from './waveEffect';
import {
  auditTable,
  deadLetterTable,
  describeRecord,
  errorLine,
  escapeUnsafe,
  toJson,
} from './output';

/** A wave's approval outlasts its last scheduled event by a day (retries, parked copies). */
const WAVE_APPROVAL_GRACE_MS = 24 * 3_600_000;

/** The runtime a command acts with; built only when the command needs it (--help needs none). */
export type RuntimeFactory = () => Runtime;

async function readInputFile(option: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`Cannot read ${option} ${path}: ${(error as Error).message}`);
  }
}

/** Runs `use` with a runtime and closes it after (a Service Bus connection keeps Node alive). */
async function withRuntime<T>(factory: RuntimeFactory, use: (runtime: Runtime) => Promise<T>) {
  const runtime = factory();
  try {
    return await use(runtime);
  } finally {
    await runtime.close();
  }
}

export interface ProcessOptions {
  file?: string;
  json?: boolean;
}

export async function processCommand(
  options: ProcessOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  const body =
    options.file !== undefined ? await readInputFile('--file', options.file) : await io.readStdin();
  return runByHand(body, options, io, runtime);
}

export interface ReinstateOptions extends ReinstateRequest {
  force?: boolean;
  json?: boolean;
}

/** `offboard reinstate`: an employee.reinstated event, run by hand like `offboard process`. */
export async function reinstateCommand(
  options: ReinstateOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  return runByHand(reinstatementEvent(options), options, io, runtime);
}

/** Runs one event through the use case by hand, prints its record, and maps it to an exit code. */
async function runByHand(
  body: unknown,
  options: { json?: boolean; force?: boolean; reason?: string },
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  const result = await withRuntime(runtime, (app) =>
    // A run by hand gets its own message id: it is a deliberate re-run, not a redelivery.
    app.offboarding.process({
      body,
      route: 'command',
      messageId: `${AppMessageIdPrefixes.command}${randomUUID()}`,
      // The operator who forces it is named on the record, in the log and the outcome event.
      ...(options.force === true
        ? { force: { by: operator(), reason: options.reason ?? '', at: new Date().toISOString() } }
        : {}),
    }),
  );
  const { record } = result;
  io.stdout(
    (options.json
      ? toJson({ ...record, duplicate: result.duplicate })
      : describeRecord(record, result.duplicate)) + '\n',
  );
  if (result.disposition === 'done') return ExitCodes.ok;
  io.stderr(
    errorLine(
      result.error?.code ?? record.errorCode ?? 'Unexpected',
      result.error?.message ?? record.errorMessage ?? 'failed',
    ),
  );
  return result.disposition === 'retry' ? ExitCodes.retryable : ExitCodes.failed;
}

export interface AuditOptions {
  user?: string;
  event?: string;
  json?: boolean;
}

export async function auditCommand(
  options: AuditOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  const { user, event } = options;
  if ((user === undefined) === (event === undefined))
    throw new UsageError('audit needs exactly one of --user or --event.');
  const records = await withRuntime(runtime, ({ audit }) =>
    user !== undefined ? recordsOfUser(audit, user) : recordsOfEvent(audit, event ?? ''),
  );
  io.stdout((options.json ? toJson(records) : auditTable(records)) + '\n');
  return ExitCodes.ok;
}

export interface ReportOptions {
  since?: Date;
  json?: boolean;
  /** The effect of this `offboard enqueue` MFA wave, from the sign-in log. */
  wave?: string;
  /** Write the evidence page here instead of printing the figures. */
  html?: string;
}

export async function reportCommand(
  options: ReportOptions,
  io: Io,
  runtime: RuntimeFactory,
  openLog: LogOpener = asOperator,
): Promise<number> {
  const now = new Date();
  const since = options.since ?? parseSince(DEFAULT_SINCE, now);
  if (options.html !== undefined)
    return writeEvidencePage(options.html, since, now, io, runtime, openLog, options.wave);
  if (options.wave !== undefined) {
    const wave = options.wave;
    const effect = await withRuntime(runtime, async ({ audit, config, signInWatch }) =>
      buildWaveEffect(
        await audit.listSince(since),
        wave,
        signInWatch.signIns,
        since,
        now,
        config.graph.signInLogVersion,
      ),
    );
    io.stdout((options.json ? toJson(effect) : formatWaveEffect(effect)) + '\n');
    return ExitCodes.ok;
  }
  const report = await withRuntime(runtime, ({ audit }) => readReport(audit, since, now));
  io.stdout((options.json ? toJson(report) : formatReport(report)) + '\n');
  return ExitCodes.ok;
}

/** `report --html FILE`: the audit table and the immutable log of the window, as one page. */
async function writeEvidencePage(
  file: string,
  since: Date,
  now: Date,
  io: Io,
  runtime: RuntimeFactory,
  openLog: LogOpener,
  wave?: string,
): Promise<number> {
  // A file that cannot be written is found before anything is read.
  try {
    await access(dirname(resolve(file)), constants.W_OK);
  } catch (error) {
    throw new UsageError(`Cannot write --html ${file}: ${(error as Error).message}`);
  }
  const { evidence, effect } = await withRuntime(
    runtime,
    async ({ audit, config, signInWatch }) => {
      const [records, log] = await Promise.all([
        audit.listSince(since),
        openLog(config.immutableLog).readBetween(new Date(since.getTime() - CLOCK_SLACK_MS), now),
      ]);
      return {
        evidence: buildEvidence(records, log.lines, log.blobs.length, since, now),
        effect:
          wave === undefined
            ? undefined
            : await buildWaveEffect(
                records,
                wave,
                signInWatch.signIns,
                since,
                now,
                config.graph.signInLogVersion,
              ),
      };
    },
  );
  try {
    // It names people: readable by its owner only, until they choose to share it.
    await writeFile(file, renderEvidenceHtml(evidence, now, effect), { mode: 0o600 });
  } catch (error) {
    throw new UsageError(`Cannot write --html ${file}: ${(error as Error).message}`);
  }
  io.stdout(
    escapeUnsafe(
      `Wrote ${file}: ${evidence.report.records} audit record(s), ${evidence.departures.length} departure(s), ${evidence.log.lines} immutable log line(s), ${evidence.report.since} to ${evidence.report.until}.`,
    ) + '\n',
  );
  return ExitCodes.ok;
}

/**
 * What the dead-letter commands read for a queue; `--queue` must name one of the app's queues (a
 * typo would otherwise read as a broker error).
 */
function deadLetterReads(queue: string, ops: Runtime): DeadLetterReads {
  const { queues } = ops.config;
  const route = RouteNames.find((name) => queues[name] === queue);
  if (route === undefined)
    throw new UsageError(
      `--queue ${queue} is not one of the app's queues: ${Object.values(queues).join(', ')}.`,
    );
  return { audit: ops.audit, timelines: ops.timelines, policy: ops.config.policy, route };
}

export interface DlqListOptions {
  queue: string;
  json?: boolean;
}

export async function dlqListCommand(
  options: DlqListOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  const summaries = await withRuntime(runtime, (ops) =>
    listDeadLetters(ops.serviceBus(), options.queue, deadLetterReads(options.queue, ops)),
  );
  io.stdout((options.json ? toJson(summaries) : deadLetterTable(summaries)) + '\n');
  return ExitCodes.ok;
}

export interface DlqReplayOptions {
  queue: string;
  reason?: string;
  event?: string;
  since?: Date;
  max: number;
  /** Messages per second; undefined: paced to the Graph write budget; 0: as fast as possible. */
  rate?: number;
  dryRun?: boolean;
  /** Replay messages a later HR intent superseded too (they are audited superseded). */
  includeSuperseded?: boolean;
  json?: boolean;
}

/**
 * A replay's default pace: the app's Graph write budget less the departures' share, for events of
 * up to three writes (a departure that resets the password), so a replay never outruns the quota.
 */
function pacedReplayRate(writesPerSecond: number): number {
  return ((writesPerSecond > 0 ? writesPerSecond : 20) * (1 - WAVE_DEPARTURE_SHARE)) / 3;
}

export async function dlqReplayCommand(
  options: DlqReplayOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  const result = await withRuntime(runtime, (ops) => {
    const reads = deadLetterReads(options.queue, ops);
    return replayDeadLetters(
      ops.serviceBus(),
      options.queue,
      reads,
      {
        ...(options.reason === undefined ? {} : { reason: options.reason }),
        ...(options.event === undefined ? {} : { eventId: options.event }),
        ...(options.since === undefined ? {} : { since: options.since }),
        max: options.max,
        ratePerSecond: options.rate ?? pacedReplayRate(ops.config.pacing.writesPerSecond),
        dryRun: options.dryRun === true,
        includeSuperseded: options.includeSuperseded === true,
      },
      progressReporter(io, 'replayed'),
    );
  });
  if (io.interactive) io.stderr('\n');
  if (options.json) {
    io.stdout(toJson(result) + '\n');
  } else {
    const verb = result.dryRun ? 'would replay' : 'replayed';
    const left = result.dryRun ? 'would leave' : 'left';
    io.stdout(
      `${verb} ${result.replayed.length}, skipped ${result.skipped} (not matching, or over --max), ${result.failed.length} failed, ${left} ${result.superseded.length} superseded in the dead-letter queue\n`,
    );
    if (result.pacing)
      io.stdout(
        `copies spread at ${result.pacing.eventsPerSecond} events/s: the last will have been processed by about ${result.pacing.finishesAt}\n`,
      );
    if (result.replayed.length > 0) io.stdout(deadLetterTable(result.replayed) + '\n');
    if (result.superseded.length > 0)
      io.stdout(
        `Superseded by a later HR intent, not replayed (--include-superseded replays them; each is then audited superseded, nothing written):\n${deadLetterTable(result.superseded)}\n`,
      );
    for (const failure of result.failed)
      io.stdout(`failed ${failure.sequenceNumber}: ${escapeUnsafe(failure.error)}\n`);
  }
  return result.failed.length > 0 ? ExitCodes.retryable : ExitCodes.ok;
}

export interface EnqueueOptions {
  type: string;
  csv: string;
  wave?: string;
  /** Events per second; undefined: paced to the Graph write budget; 0: all now. */
  rate?: number;
  /** The exact size of a departures wave above the ceiling (ENQUEUE_CONFIRM_DEPARTURES_ABOVE). */
  confirmSize?: number;
  dryRun?: boolean;
  json?: boolean;
}

/** A user of the file as the directory knows it (undefined: no such user). */
function resolverOf(ops: Runtime): ResolveUser {
  return async (ref) => {
    try {
      const { user } = await ops.directory.getUser(ref);
      return { id: user.id.toLowerCase(), upn: user.userPrincipalName };
    } catch (error) {
      if (error instanceof OffboardingError && error.code === ErrorCodes.UserNotFound)
        return undefined;
      throw error;
    }
  };
}

export async function enqueueCommand(
  options: EnqueueOptions,
  io: Io,
  runtime: RuntimeFactory,
): Promise<number> {
  const text = await readInputFile('--csv', options.csv);
  let rows;
  try {
    rows = parseCsv(text);
  } catch (error) {
    throw new UsageError(`${options.csv}: ${(error as Error).message}`);
  }
  const wave = options.wave ?? waveIdOf(options.type, text);
  return withRuntime(runtime, async (ops) => {
    const plan = planEnqueue(options.type, rows, ops.config, wave);
    const { queue, messages } = plan;
    if (plan.errors.length === 0) {
      // The file as a whole: protected accounts, the same person twice, the size of a departures wave.
      const departuresLimit = ops.config.guardrail.limits.employeeLeaving.maxPerWindow;
      const check = await checkWave(plan, ops.config.policy, {
        ...(kindOfType(options.type) === 'employee.leaving'
          ? { departuresCeiling: ops.config.guardrail.confirmDeparturesAbove || departuresLimit }
          : {}),
        ...(options.confirmSize === undefined ? {} : { confirmSize: options.confirmSize }),
        resolve: resolverOf(ops),
      });
      plan.errors.push(...check.errors);
      for (const note of check.notes) io.stderr(`note: ${escapeUnsafe(note)}\n`);
    }
    if (plan.errors.length > 0) {
      // Nothing is sent unless the whole file is valid.
      if (options.json) io.stdout(toJson({ wave, sent: 0, errors: plan.errors }) + '\n');
      for (const error of plan.errors)
        io.stderr(`${escapeUnsafe(options.csv)}: ${escapeUnsafe(error)}\n`);
      io.stderr(`${plan.errors.length} problem(s) in the file; nothing was sent.\n`);
      return ExitCodes.failed;
    }
    const eventIds = messages.map((m) => String(m.messageId));
    if (options.dryRun) {
      io.stdout(
        options.json
          ? toJson({ queue, wave, wouldSend: messages.length, eventIds, dryRun: true }) + '\n'
          : `would send ${messages.length} event(s) to ${queue} in wave ${wave} (the real run uses this wave id; to be sure, pass --wave ${wave})\n`,
      );
      return ExitCodes.ok;
    }
    const schedule = paceWave(plan, {
      writesPerSecond: ops.config.pacing.writesPerSecond,
      rate: options.rate,
      start: new Date(),
    });
    // Service Bus settings are checked first: a wave that cannot be sent is not approved.
    const serviceBus = ops.serviceBus();
    // The wave approves exactly its events (their digest), recorded before anything is sent.
    const now = new Date();
    await approveWave(
      ops.guardrailStore,
      guardrailOf(kindOfType(options.type) ?? 'employee.leaving'),
      wave,
      {
        size: messages.length,
        root: plan.approvalRoot,
        by: operator(),
        reason: `offboard enqueue --csv ${basename(options.csv)}`,
        at: now.toISOString(),
        expiresAt: new Date(
          (schedule?.finishesAt ?? now).getTime() + WAVE_APPROVAL_GRACE_MS,
        ).toISOString(),
      },
    );
    const sent = await sendPlan(
      serviceBus,
      plan,
      schedule,
      progressReporter(io, 'sent', messages.length),
    );
    if (io.interactive) io.stderr('\n');
    const pacing =
      schedule === undefined
        ? {}
        : {
            eventsPerSecond: Math.round(schedule.eventsPerSecond * 100) / 100,
            finishesAt: schedule.finishesAt.toISOString(),
          };
    io.stdout(
      options.json
        ? toJson({ queue, wave, sent, ...pacing, eventIds }) + '\n'
        : `sent ${sent} event(s) to ${queue} in wave ${wave}${
            schedule === undefined
              ? ''
              : `, spread at ${pacing.eventsPerSecond} events/s: the wave will have finished by about ${pacing.finishesAt}`
          } (to send this file again without sending any twice: --wave ${wave})\n`,
    );
    return ExitCodes.ok;
  });
}
