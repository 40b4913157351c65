#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { EventKinds } from '../shared/events';
import { isOffboardingError, toOffboardingError, ErrorCodes } from '../shared/errors';
import type { AuditRecord } from '../shared/ports';
import { createRuntime, type Runtime } from '../shared/runtime';
import { DefaultAzureCredential } from '@azure/identity';
import { loadConfig } from '../shared/config';
import { parseCsv } from './csv';
import {
  listDeadLetters,
  opsServiceBusClient,
  planEnqueue,
  replayDeadLetters,
  sendPlan,
  type DeadLetterSummary,
} from './ops';

/** Exit codes (sysexits-style, so runbooks can branch on them). */
export const ExitCodes = {
  ok: 0,
  failed: 1,
  usage: 64,
  retryable: 75,
  config: 78,
} as const;

const USAGE = `Usage:
  offboard process [--file PATH] [--json]     run one event (stdin without --file) through the same use case as the functions
  offboard audit --user ID_OR_UPN [--json]    audit records of a user
  offboard audit --event ID [--json]          the audit record of an event
  offboard dlq list --queue Q [--json]        dead-lettered messages with reason and last audited error
  offboard dlq replay --queue Q [--reason R] [--event ID] [--since T] [--max N] [--rate PER_S] [--dry-run] [--json]
                                              send dead-lettered messages back to their queue
  offboard enqueue --type TYPE --csv FILE [--rate PER_S] [--dry-run] [--json]
                                              send a wave of events (e.g. an MFA roll-out) from a CSV file

Settings come from the environment, exactly as for the Function App (see README, "Settings").
Exit codes: 0 succeeded, dry run or already processed; 1 failed or refused; 75 failed but retryable;
64 usage error; 78 configuration error.`;

class UsageError extends Error {}

interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
  /** Progress lines go to stderr only on a terminal; pipes and CI stay quiet. */
  interactive?: boolean;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

export async function main(
  argv: string[],
  io: Io,
  runtime: () => Runtime = () => createRuntime(),
  // Ops commands act as the person running them (DefaultAzureCredential), not as the app.
  opsRuntime: () => Runtime = () =>
    createRuntime(loadConfig(), { credential: new DefaultAzureCredential() }),
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'process':
        return await processCommand(rest, io, runtime);
      case 'audit':
        return await auditCommand(rest, io, runtime);
      case 'dlq':
        return await dlqCommand(rest, io, opsRuntime);
      case 'enqueue':
        return await enqueueCommand(rest, io, opsRuntime);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.stdout(USAGE + '\n');
        return command === undefined ? ExitCodes.usage : ExitCodes.ok;
      default:
        throw new UsageError(`Unknown command "${command}".`);
    }
  } catch (error) {
    if (
      error instanceof UsageError ||
      (error instanceof TypeError &&
        'code' in error &&
        String(error.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      io.stderr(`error: ${error.message}\n\n${USAGE}\n`);
      return ExitCodes.usage;
    }
    const failure = toOffboardingError(error);
    io.stderr(`error ${failure.code}: ${failure.message}\n`);
    if (failure.code === ErrorCodes.InvalidConfiguration) return ExitCodes.config;
    return failure.retryable ? ExitCodes.retryable : ExitCodes.failed;
  }
}

async function processCommand(args: string[], io: Io, runtime: () => Runtime): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { file: { type: 'string' }, json: { type: 'boolean', default: false } },
    strict: true,
    allowPositionals: false,
  });
  const body = values.file !== undefined ? await readEventFile(values.file) : await io.readStdin();
  const app = runtime();
  let result;
  try {
    // A run by hand gets its own message id: it is a deliberate re-run, not a redelivery.
    result = await app.offboarding.process({
      body,
      accepts: EventKinds,
      messageId: `cli:${randomUUID()}`,
    });
  } finally {
    // A leave date opens a Service Bus connection, which would keep the process alive.
    await app.close();
  }
  const { record } = result;
  if (values.json) {
    io.stdout(JSON.stringify({ ...record, duplicate: result.duplicate }, null, 2) + '\n');
  } else {
    io.stdout(describe(record, result.duplicate) + '\n');
  }
  if (result.disposition === 'done') return ExitCodes.ok;
  const error = result.error;
  io.stderr(
    `error ${error?.code ?? record.errorCode ?? 'Unexpected'}: ${error?.message ?? record.errorMessage ?? 'failed'}\n`,
  );
  return result.disposition === 'retry' ? ExitCodes.retryable : ExitCodes.failed;
}

async function readEventFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`Cannot read --file ${path}: ${(error as Error).message}`);
  }
}

async function auditCommand(args: string[], io: Io, runtime: () => Runtime): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      user: { type: 'string' },
      event: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if ((values.user === undefined) === (values.event === undefined)) {
    throw new UsageError('audit needs exactly one of --user or --event.');
  }
  const { audit } = runtime();
  const records =
    values.user !== undefined
      ? await audit.findByUser(values.user)
      : await audit.get(values.event as string).then((r) => (r ? [r] : []));
  if (values.json) {
    io.stdout(JSON.stringify(records, null, 2) + '\n');
  } else if (records.length === 0) {
    io.stdout('No audit records.\n');
  } else {
    io.stdout(table(records) + '\n');
  }
  return ExitCodes.ok;
}

function progressReporter(io: Io, label: string, total?: number): (done: number) => void {
  if (!io.interactive) return () => undefined;
  return (done) => io.stderr(`\r${label} ${done}${total === undefined ? '' : `/${total}`}`);
}

function positiveNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0)
    throw new UsageError(`${name} must be a number >= 0 (got "${raw}").`);
  return value;
}

async function dlqCommand(args: string[], io: Io, runtime: () => Runtime): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      queue: { type: 'string' },
      reason: { type: 'string' },
      event: { type: 'string' },
      since: { type: 'string' },
      max: { type: 'string' },
      rate: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (sub !== 'list' && sub !== 'replay') throw new UsageError('dlq needs "list" or "replay".');
  if (values.queue === undefined) throw new UsageError(`dlq ${sub} needs --queue.`);
  if (
    sub === 'list' &&
    (values.reason ?? values.event ?? values.since ?? values.max ?? values.rate) !== undefined
  ) {
    throw new UsageError('dlq list takes only --queue and --json.');
  }
  const since = values.since === undefined ? undefined : new Date(values.since);
  if (since !== undefined && Number.isNaN(since.getTime()))
    throw new UsageError(`--since must be a date/time (got "${values.since}").`);

  const { config, audit } = runtime();
  const client = opsServiceBusClient(config);
  try {
    if (sub === 'list') {
      const summaries = await listDeadLetters(client, values.queue, audit);
      io.stdout(
        values.json ? JSON.stringify(summaries, null, 2) + '\n' : deadLetterTable(summaries) + '\n',
      );
      return ExitCodes.ok;
    }
    const result = await replayDeadLetters(
      client,
      values.queue,
      audit,
      {
        ...(values.reason === undefined ? {} : { reason: values.reason }),
        ...(values.event === undefined ? {} : { eventId: values.event }),
        ...(since === undefined ? {} : { since }),
        max: positiveNumber('--max', values.max, Number.MAX_SAFE_INTEGER),
        ratePerSecond: positiveNumber('--rate', values.rate, 10),
        dryRun: values['dry-run'],
      },
      progressReporter(io, 'replayed'),
    );
    if (io.interactive) io.stderr('\n');
    if (values.json) {
      io.stdout(JSON.stringify(result, null, 2) + '\n');
    } else {
      const verb = result.dryRun ? 'would replay' : 'replayed';
      io.stdout(
        `${verb} ${result.replayed.length}, skipped ${result.skipped} (not matching, or over --max), ${result.failed.length} failed\n`,
      );
      if (result.replayed.length > 0) io.stdout(deadLetterTable(result.replayed) + '\n');
      for (const failure of result.failed)
        io.stdout(`failed ${failure.sequenceNumber}: ${failure.error}\n`);
    }
    return result.failed.length > 0 ? ExitCodes.retryable : ExitCodes.ok;
  } finally {
    await client.close();
  }
}

async function enqueueCommand(args: string[], io: Io, runtime: () => Runtime): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      type: { type: 'string' },
      csv: { type: 'string' },
      rate: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.type === undefined || values.csv === undefined)
    throw new UsageError('enqueue needs --type and --csv.');
  const text = await readEventFile(values.csv);
  let rows;
  try {
    rows = parseCsv(text);
  } catch (error) {
    throw new UsageError(`${values.csv}: ${(error as Error).message}`);
  }
  const { config } = runtime();
  const plan = planEnqueue(values.type, rows, config);
  if (plan.errors.length > 0) {
    // Nothing is sent unless the whole file is valid.
    if (values.json) io.stdout(JSON.stringify({ sent: 0, errors: plan.errors }, null, 2) + '\n');
    for (const error of plan.errors) io.stderr(`${values.csv}: ${error}\n`);
    io.stderr(`${plan.errors.length} bad row(s); nothing was sent.\n`);
    return ExitCodes.failed;
  }
  if (values['dry-run']) {
    const summary = { queue: plan.queue, wouldSend: plan.messages.length, dryRun: true };
    io.stdout(
      values.json
        ? JSON.stringify(summary, null, 2) + '\n'
        : `would send ${plan.messages.length} event(s) to ${plan.queue}\n`,
    );
    return ExitCodes.ok;
  }
  const client = opsServiceBusClient(config);
  try {
    const sent = await sendPlan(
      client,
      plan,
      positiveNumber('--rate', values.rate, 50),
      progressReporter(io, 'sent', plan.messages.length),
    );
    if (io.interactive) io.stderr('\n');
    const summary = { queue: plan.queue, sent, eventIds: plan.messages.map((m) => m.messageId) };
    io.stdout(
      values.json
        ? JSON.stringify(summary, null, 2) + '\n'
        : `sent ${sent} event(s) to ${plan.queue}\n`,
    );
    return ExitCodes.ok;
  } finally {
    await client.close();
  }
}

function deadLetterTable(summaries: DeadLetterSummary[]): string {
  if (summaries.length === 0) return 'No dead-lettered messages.';
  const header = [
    'sequence',
    'enqueued',
    'event',
    'user',
    'deliveries',
    'reason',
    'description',
    'last audited error',
  ];
  const rows = summaries.map((s) => [
    s.sequenceNumber,
    s.enqueuedTime ?? '',
    s.eventId ?? '',
    s.user ?? '',
    String(s.deliveryCount),
    s.reason,
    s.description.slice(0, 60),
    (s.lastAuditedError ?? '').slice(0, 80),
  ]);
  return formatTable(header, rows);
}

function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const format = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [format(header), ...rows.map(format)].join('\n');
}

function describe(record: AuditRecord, duplicate: boolean): string {
  const lines = [
    `event      ${record.eventId}`,
    `outcome    ${duplicate ? `already processed (${record.outcome}); nothing done` : record.outcome}`,
  ];
  if (record.user !== undefined)
    lines.push(`user       ${record.user}${record.objectId ? ` (${record.objectId})` : ''}`);
  for (const action of record.actions) {
    lines.push(
      `action     ${action.action}: ${action.status}${action.message ? ` - ${action.message}` : ''}`,
    );
  }
  if (record.verification) {
    lines.push(
      `verified   ${record.verification.verified ? 'yes' : 'NO'} (signInSessionsValidFrom ${record.verification.signInSessionsValidFrom ?? 'unknown'})`,
    );
  }
  for (const note of record.notes) lines.push(`note       ${note}`);
  return lines.join('\n');
}

function table(records: AuditRecord[]): string {
  const rows = records.map((r) => [
    r.lastAttemptAt,
    r.eventId,
    r.eventType ?? '',
    r.user ?? '',
    r.outcome,
    r.actions.map((a) => `${a.action}:${a.status}`).join(' '),
    r.verification ? (r.verification.verified ? 'yes' : 'no') : '',
    r.errorCode ?? '',
  ]);
  return formatTable(
    ['time', 'event', 'type', 'user', 'outcome', 'actions', 'verified', 'error'],
    rows,
  );
}

if (require.main === module) {
  main(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: () => readAll(process.stdin),
    interactive: process.stderr.isTTY === true,
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`error: ${isOffboardingError(error) ? error.message : String(error)}\n`);
      process.exitCode = ExitCodes.failed;
    },
  );
}
