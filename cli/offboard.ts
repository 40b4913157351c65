#!/usr/bin/env node
import { DefaultAzureCredential } from '@azure/identity';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, requireServiceBus, serviceBusTarget } from '../shared/app/config';
import { toOffboardingError } from '../shared/core/errors';
import { EventKinds, kindOfType } from '../shared/core/events';
import { createRuntime } from '../shared/app/runtime';
import {
  auditCommand,
  dlqListCommand,
  dlqReplayCommand,
  enqueueCommand,
  processCommand,
  reinstateCommand,
  reportCommand,
  type AuditOptions,
  type DlqListOptions,
  type DlqReplayOptions,
  type EnqueueOptions,
  type ProcessOptions,
  type ReinstateOptions,
  type ReportOptions,
  type RuntimeFactory,
} from './commands';
import { auditVerifyCommand, type AuditVerifyOptions } from './auditVerify';
import { isWaveId, WAVE_ID_RULE } from './enqueue';
import { ExitCodes, exitCodeOf, UsageError } from './exitCodes';
import { readAll, type Io } from './io';
import { DEFAULT_SINCE, parseSince } from './report';
import {
  GUARDRAIL_KINDS,
  guardrailDiscardCommand,
  guardrailReopenCommand,
  guardrailReleaseCommand,
  guardrailStatusCommand,
  type ReleaseOptions,
} from './guardrail';
import { errorLine, escapeUnsafe } from './output';

export { ExitCodes } from './exitCodes';

const ROOT_HELP = `
Settings come from the environment, exactly as for the Function App (see docs/settings.md).
process, reinstate, audit and report act as the app; dlq, enqueue, guardrail and audit verify as
the person running them.

Exit codes:
  0   succeeded, dry run, or already processed
  1   failed or refused
  64  usage error (the command's usage is printed on stderr)
  75  failed but retryable: run it again later
  78  configuration error: a setting is missing or invalid`;

const REINSTATE_HELP = `
Refused without --force when the audit shows no departure of this app that disabled the account
(or a later reinstatement already re-enabled it); protected accounts are always refused. A
departure still scheduled is not cancelled: send employee.leaving.cancelled for that.
Not restored: a password the departure reset, sessions it revoked. Next (helpdesk): issue a
Temporary Access Pass or a new password; the user signs in again.`;

function nonNegativeNumber(raw: string): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < 0)
    throw new InvalidArgumentError('It must be a number >= 0.');
  return value;
}

function count(raw: string): number {
  const value = nonNegativeNumber(raw);
  if (!Number.isInteger(value)) throw new InvalidArgumentError('It must be a whole number >= 0.');
  return value;
}

function positiveInteger(raw: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || value < 1)
    throw new InvalidArgumentError('It must be a whole number >= 1.');
  return value;
}

function dateTime(raw: string): Date {
  const value = new Date(raw);
  if (Number.isNaN(value.getTime()))
    throw new InvalidArgumentError('It must be a date/time, e.g. 2026-11-27T10:00:00Z.');
  return value;
}

/** An event type the app knows (`--type`), optionally with a reverse-DNS prefix. */
function eventType(raw: string): string {
  if (kindOfType(raw) === undefined)
    throw new InvalidArgumentError(
      `It must be one of ${EventKinds.join(', ')} (optionally with a reverse-DNS prefix, e.g. com.contoso.hr.employee.leaving).`,
    );
  return raw;
}

function waveId(raw: string): string {
  if (!isWaveId(raw)) throw new InvalidArgumentError(`A wave id is ${WAVE_ID_RULE}.`);
  return raw;
}

const jsonOption = () => new Option('--json', 'print JSON only on stdout');
/** The window of `report` and `audit verify`. */
const sinceOption = () =>
  new Option(
    '--since <when>',
    `records last attempted since: 30m, 24h, 7d, or a date/time (default: ${DEFAULT_SINCE})`,
  ).argParser((raw) => parseSince(raw));
/** Default: spread to the app's Graph write budget (PACING_WRITES_PER_SECOND). */
const pacedRateOption = () =>
  new Option(
    '--rate <per_s>',
    'events per second (default: paced to the Graph write budget, leaving room for departures); 0 = all now',
  ).argParser(nonNegativeNumber);

/**
 * The command tree. Each action sets the exit code; parsing errors surface as CommanderError
 * (exitOverride), so nothing here calls process.exit.
 */
function buildProgram(
  io: Io,
  app: RuntimeFactory,
  ops: RuntimeFactory,
  exitWith: (code: number) => void,
): Command {
  // Commands that run, replay or send events need Service Bus (retries, outcomes, sends): its
  // settings are checked when the command builds its runtime, before it acts, so a missing one
  // stops it with exit 78 before any Graph write, never after.
  const sending =
    (factory: RuntimeFactory): RuntimeFactory =>
    () => {
      const runtime = factory();
      requireServiceBus(runtime.config);
      return runtime;
    };
  const appSending = sending(app);
  const opsSending = sending(ops);
  // Usage errors found while running (a missing file, an invalid CSV) show the command's usage too.
  const run =
    <T>(handler: (options: T) => Promise<number>) =>
    async (options: T, command: Command) => {
      try {
        exitWith(await handler(options));
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        command.error(`error: ${error.message}`, {
          exitCode: ExitCodes.usage,
          code: 'offboard.usage',
        });
      }
    };

  const program = new Command('offboard')
    .description(
      'Offboarding operations: run an event, read the audit, replay dead letters, send a wave.',
    )
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // Parse errors quote what was typed: escape it like every other output.
      outputError: (text, write) => write(escapeUnsafe(text.trimEnd()) + '\n'),
    })
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride()
    // Options belong to the command they follow: `audit verify --json` is verify's --json, not audit's.
    .enablePositionalOptions()
    .showHelpAfterError()
    .addHelpText('after', ROOT_HELP);

  program
    .command('process')
    .description('run one event (stdin without --file) through the same use case as the functions')
    .option('--file <path>', 'read the event from this file')
    .addOption(jsonOption())
    .action(run((options: ProcessOptions) => processCommand(options, io, appSending)));

  program
    .command('reinstate')
    .description(
      're-enable an account this app disabled: an employee.reinstated event, audited as its own',
    )
    .requiredOption('--user <id_or_upn>', 'the user to reinstate')
    .requiredOption('--reason <text>', 'why (kept in the audit)')
    .option('--event <id>', 'the departure event this undoes (kept in the audit as a note)')
    .option(
      '--force',
      'also an account the audit does not show this app disabled (never a protected account)',
    )
    .addOption(jsonOption())
    .addHelpText('after', REINSTATE_HELP)
    .action(run((options: ReinstateOptions) => reinstateCommand(options, io, appSending)));

  const audit = program
    .command('audit')
    .description(
      'the audit records of a user, or of one event; `audit verify` checks the immutable log',
    )
    .addOption(new Option('--user <id_or_upn>', 'records of this user').conflicts('event'))
    .addOption(new Option('--event <id>', 'the record of this event id'))
    .addOption(jsonOption())
    .enablePositionalOptions()
    .action(run((options: AuditOptions) => auditCommand(options, io, app)));
  audit
    .command('verify')
    .description(
      'compare the audit table with the immutable audit log: records that differ or are missing',
    )
    .addOption(sinceOption())
    .addOption(jsonOption())
    // The operator's identity reads the log (Storage Blob Data Reader); the app's can only append.
    .action(run((options: AuditVerifyOptions) => auditVerifyCommand(options, io, ops)));

  program
    .command('report')
    .description(
      'figures from the audit: outcomes, error codes, time to revocation, open failures, held events',
    )
    .addOption(sinceOption())
    .addOption(jsonOption())
    .addOption(
      new Option(
        '--html <file>',
        'write the evidence page (charts, every departure) to this file',
      ).conflicts('json'),
    )
    .addOption(
      new Option(
        '--wave <id>',
        'the effect of an `offboard enqueue` MFA wave: who signed in again with MFA, who has not signed in, who signed in without (reads the Entra sign-in log: AuditLog.Read.All, Entra ID P1/P2); with --html, a section of the page',
      ).argParser(waveId),
    )
    .action(run((options: ReportOptions) => reportCommand(options, io, app)));

  const guardrail = program
    .command('guardrail')
    .description('the blast-radius guardrail: what it holds, release or discard held events');
  const kindOption = () =>
    new Option('--kind <kind>', 'departures, mfa or reinstatements')
      .choices(Object.keys(GUARDRAIL_KINDS))
      .makeOptionMandatory();
  const reasonOption = () =>
    new Option('--reason <text>', 'why (audited on every event)').makeOptionMandatory();
  guardrail
    .command('status')
    .description('limits, executions in the window, trips, held events and approved waves')
    .addOption(jsonOption())
    .action(run((options: { json?: boolean }) => guardrailStatusCommand(options, io, ops)));
  guardrail
    .command('release')
    .description('run held events (oldest first), paced; recorded as an approval with who and why')
    .addOption(kindOption())
    .addOption(reasonOption())
    .addOption(new Option('--max <n>', 'release at most n events').argParser(positiveInteger))
    .addOption(jsonOption())
    .action(run((options: ReleaseOptions) => guardrailReleaseCommand(options, io, opsSending)));
  guardrail
    .command('discard')
    .description('never run the held events of a kind; each is audited as discarded')
    .addOption(kindOption())
    .addOption(reasonOption())
    .addOption(jsonOption())
    .action(
      run((options: { kind: string; reason: string; json?: boolean }) =>
        guardrailDiscardCommand(options, io, opsSending),
      ),
    );
  guardrail
    .command('reopen')
    .description('open the gate on purpose: clear the trip and start the window again (none held)')
    .addOption(kindOption())
    .addOption(reasonOption())
    .addOption(jsonOption())
    .action(
      run((options: { kind: string; reason: string; json?: boolean }) =>
        guardrailReopenCommand(options, io, ops),
      ),
    );

  // dlq and enqueue need Service Bus before anything else: a missing setting is named first.
  const queueOps: RuntimeFactory = () => {
    try {
      return ops();
    } catch (error) {
      requireServiceBus({ serviceBus: serviceBusTarget() });
      throw error;
    }
  };
  const queueOpsSending = sending(queueOps);

  const dlq = program
    .command('dlq')
    .description('dead-lettered messages: list them, replay them to their queue');
  dlq
    .command('list')
    .description('dead-lettered messages (peeked) with reason and the last audited error')
    .requiredOption('--queue <name>', 'the queue whose dead letters to list')
    .addOption(jsonOption())
    .action(run((options: DlqListOptions) => dlqListCommand(options, io, queueOpsSending)));
  dlq
    .command('replay')
    .description(
      'send matching dead-lettered messages back to their queue (crash-safe: a re-run sends no second copy)',
    )
    .requiredOption('--queue <name>', 'the queue whose dead letters to replay')
    .option('--reason <reason>', 'only messages dead-lettered with this reason')
    .option('--event <id>', 'only the message of this event id')
    .addOption(
      new Option('--since <time>', 'only messages enqueued at or after this time').argParser(
        dateTime,
      ),
    )
    .addOption(
      new Option('--max <n>', 'replay at most n messages')
        .argParser(count)
        .default(Number.MAX_SAFE_INTEGER, 'all'),
    )
    .addOption(pacedRateOption())
    .option('--dry-run', 'show what would be replayed, change nothing')
    .option(
      '--include-superseded',
      'also replay messages a later HR intent superseded (the app audits them superseded, writes nothing)',
    )
    .addOption(jsonOption())
    .action(run((options: DlqReplayOptions) => dlqReplayCommand(options, io, queueOpsSending)));

  program
    .command('enqueue')
    .description('send a wave of events (an MFA roll-out, a batch of departures) from a CSV file')
    .addOption(
      new Option('--type <type>', `event type: ${EventKinds.join(', ')}`)
        .argParser(eventType)
        .makeOptionMandatory(),
    )
    .requiredOption('--csv <file>', 'CSV with a "user" column (and reason, ticket, ...)')
    .addOption(
      new Option(
        '--wave <id>',
        'the wave these events belong to; the same file and wave again sends nothing twice (default: the UTC day and a digest of the type and file, printed, also by --dry-run)',
      ).argParser(waveId),
    )
    .addOption(pacedRateOption())
    .addOption(
      new Option(
        '--confirm-size <n>',
        'the exact number of events, required for a departures wave above ENQUEUE_CONFIRM_DEPARTURES_ABOVE (default: the departures guardrail limit)',
      ).argParser(positiveInteger),
    )
    .option('--dry-run', 'validate the file and show what would be sent')
    .addOption(jsonOption())
    .action(run((options: EnqueueOptions) => enqueueCommand(options, io, queueOpsSending)));

  return program;
}

export async function main(
  argv: string[],
  io: Io,
  runtime: RuntimeFactory = () => createRuntime(),
  // Ops commands act as the person running them (DefaultAzureCredential), not as the app.
  opsRuntime: RuntimeFactory = () =>
    createRuntime(loadConfig(), { credential: new DefaultAzureCredential() }),
): Promise<number> {
  let exitCode: number = ExitCodes.ok;
  const program = buildProgram(io, runtime, opsRuntime, (code) => (exitCode = code));
  try {
    await program.parseAsync(helpOfSubcommand(argv), { from: 'user' });
    return exitCode;
  } catch (error) {
    // Help asked for exits 0 (--help, `help`, --version); every other parse error is a usage error.
    if (error instanceof CommanderError)
      return error.exitCode === 0 ? ExitCodes.ok : ExitCodes.usage;
    const failure = toOffboardingError(error);
    io.stderr(errorLine(failure.code, failure.message));
    if (failure.retryable && sandboxNotRunning(failure.message)) io.stderr(SANDBOX_HINT);
    return exitCodeOf(failure);
  }
}

/**
 * `help guardrail status` as `guardrail status --help`: commander's help command only goes one
 * level deep and would print the group's help.
 */
function helpOfSubcommand(argv: string[]): string[] {
  const [first, ...rest] = argv;
  if (first !== 'help' || rest.length < 2 || rest.some((arg) => arg.startsWith('-'))) return argv;
  return [...rest, '--help'];
}

/** Set in the sandbox's settings file (.local/sandbox.env), read by `npm run offboard:sandbox`. */
const SANDBOX_SETTING = 'OFFBOARD_SANDBOX';
const SANDBOX_HINT =
  'hint: the local sandbox is not running (these are its settings, from .local/sandbox.env): start it with `npm start` and leave it running.\n';

/** A refused connection under the sandbox's settings: its stand-ins are gone. */
function sandboxNotRunning(message: string): boolean {
  return process.env[SANDBOX_SETTING] === '1' && /ECONNREFUSED/.test(message);
}

/** The version in package.json (dist/cli/offboard.js and cli/offboard.ts alike). */
function packageVersion(): string {
  for (const path of [
    join(__dirname, '..', '..', 'package.json'),
    join(__dirname, '..', 'package.json'),
  ]) {
    try {
      const { name, version } = JSON.parse(readFileSync(path, 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (name === 'entra-offboarding' && version !== undefined) return version;
    } catch {
      // Not here: try the next place.
    }
  }
  return 'unknown';
}

if (require.main === module) {
  main(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: () => readAll(process.stdin),
    interactive: process.stderr.isTTY === true,
  }).then(
    // Exit once the output is flushed, not when the event loop drains: a dependency that timed
    // out may still hold a socket open, and the command must not hang on it.
    (code) => exitAfterFlush(code),
    (error: unknown) => {
      process.stderr.write(errorLine('Unexpected', String(error)));
      exitAfterFlush(ExitCodes.failed);
    },
  );
}

function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}
