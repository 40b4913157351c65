#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { EventKinds } from '../shared/events';
import { isOffboardingError, toOffboardingError, ErrorCodes } from '../shared/errors';
import type { AuditRecord } from '../shared/ports';
import { createRuntime, type Runtime } from '../shared/runtime';

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

Settings come from the environment, exactly as for the Function App (see README, "Settings").
Exit codes: 0 succeeded, dry run or already processed; 1 failed or refused; 75 failed but retryable;
64 usage error; 78 configuration error.`;

class UsageError extends Error {}

interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

export async function main(argv: string[], io: Io, runtime: () => Runtime = () => createRuntime()): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'process':
        return await processCommand(rest, io, runtime);
      case 'audit':
        return await auditCommand(rest, io, runtime);
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
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
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
  // A run by hand gets its own message id: it is a deliberate re-run, not a redelivery.
  const result = await runtime().offboarding.process({ body, accepts: EventKinds, messageId: `cli:${randomUUID()}` });
  const { record } = result;
  if (values.json) {
    io.stdout(JSON.stringify({ ...record, duplicate: result.duplicate }, null, 2) + '\n');
  } else {
    io.stdout(describe(record, result.duplicate) + '\n');
  }
  if (result.disposition === 'done') return ExitCodes.ok;
  const error = result.error;
  io.stderr(`error ${error?.code ?? record.errorCode ?? 'Unexpected'}: ${error?.message ?? record.errorMessage ?? 'failed'}\n`);
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
    options: { user: { type: 'string' }, event: { type: 'string' }, json: { type: 'boolean', default: false } },
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

function describe(record: AuditRecord, duplicate: boolean): string {
  const lines = [
    `event      ${record.eventId}`,
    `outcome    ${duplicate ? `already processed (${record.outcome}); nothing done` : record.outcome}`,
  ];
  if (record.user !== undefined) lines.push(`user       ${record.user}${record.objectId ? ` (${record.objectId})` : ''}`);
  for (const action of record.actions) {
    lines.push(`action     ${action.action}: ${action.status}${action.message ? ` - ${action.message}` : ''}`);
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
  const header = ['time', 'event', 'type', 'user', 'outcome', 'actions', 'verified', 'error'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const format = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [format(header), ...rows.map(format)].join('\n');
}

if (require.main === module) {
  main(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: () => readAll(process.stdin),
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
