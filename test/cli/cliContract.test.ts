import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli';

// No Service Bus settings at all; the audit table points at a connection string that is never
// dialled before the Service Bus check fails.
const noServiceBus = {
  AUDIT_TABLE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
  PROTECTED_USERS: 'breakglass@contoso.com',
  ServiceBusConnection: '',
  ServiceBusConnection__fullyQualifiedNamespace: '',
};

const COMMANDS = [
  [],
  ['process'],
  ['audit'],
  ['report'],
  ['dlq'],
  ['dlq', 'list'],
  ['dlq', 'replay'],
  ['enqueue'],
] as const;

describe('offboard --help', () => {
  it.each(COMMANDS.map((path) => [path.join(' ') || '(root)', path] as const))(
    '%s --help prints its usage on stdout and exits 0',
    async (_name, path) => {
      const run = await runCli([...path, '--help'], noServiceBus);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(
        new RegExp(`^Usage: offboard${path.map((p) => ` ${p}`).join('')}( |$)`, 'm'),
      );
    },
  );

  it('the root help lists every command and the exit codes', async () => {
    const run = await runCli(['--help'], noServiceBus);
    for (const command of ['process', 'audit', 'report', 'dlq', 'enqueue']) {
      expect(run.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    }
    expect(run.stdout).toMatch(/64\b.*usage/i);
    expect(run.stdout).toMatch(/78\b.*configuration/i);
  });
});

describe('usage errors exit 64 with the command’s usage on stderr', () => {
  it.each([
    [['process', '--no-such-flag'], 'process'],
    [['audit', '--user', 'a@contoso.com', '--event', 'x'], 'audit'],
    [['audit'], 'audit'],
    [['report', '--since', '7x'], 'report'],
    [['dlq', 'list'], 'dlq list'],
    [['dlq', 'list', '--queue', 'q', '--max', '3'], 'dlq list'],
    [['dlq', 'replay', '--queue', 'q', '--max', 'many'], 'dlq replay'],
    [['dlq', 'replay', '--queue', 'q', '--max', '2.5'], 'dlq replay'],
    [['dlq', 'replay', '--queue', 'q', '--since', 'yesterday'], 'dlq replay'],
    [['enqueue', '--type', 'mfa.enabled'], 'enqueue'],
    [['dlq'], 'dlq'],
    [['dlq', 'purge'], 'dlq'],
    [['frobnicate'], ''],
    [[], ''],
  ] as const)('%j', async (args, usageOf) => {
    const run = await runCli([...args], noServiceBus);
    expect(run.code).toBe(64);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(new RegExp(`^Usage: offboard${usageOf ? ` ${usageOf}` : ''} `, 'm'));
  });
});

describe('configuration errors exit 78 in every command', () => {
  it.each([
    [['dlq', 'list', '--queue', 'mfa-enabled']],
    [['dlq', 'replay', '--queue', 'mfa-enabled']],
  ] as const)('%j without Service Bus settings', async (args) => {
    const run = await runCli([...args], noServiceBus);
    expect(run.stderr).toMatch(
      /^error InvalidConfiguration: .*ServiceBusConnection__fullyQualifiedNamespace/m,
    );
    expect(run.code).toBe(78);
  });

  it('enqueue without Service Bus settings', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'offboard-contract-')), 'wave.csv');
    await writeFile(path, 'user\nalice@contoso.com\n');
    const run = await runCli(['enqueue', '--type', 'mfa.enabled', '--csv', path], noServiceBus);
    expect(run.stderr).toMatch(/^error InvalidConfiguration: /m);
    expect(run.code).toBe(78);
  });

  it.each([
    [['process'], '{}'],
    [['audit', '--user', 'a@contoso.com'], undefined],
  ] as const)('%j without an audit table', async (args, stdin) => {
    const run = await runCli(
      [...args],
      { ...noServiceBus, AUDIT_TABLE_CONNECTION_STRING: '', AUDIT_TABLE_ENDPOINT: '' },
      stdin,
    );
    expect(run.stderr).toMatch(/Setting AUDIT_TABLE_ENDPOINT is required/);
    expect(run.code).toBe(78);
  });
});
