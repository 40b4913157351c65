import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli';
import { waitFor } from '../support/wait';

const SANDBOX = join(__dirname, '..', '..', 'dist', 'dev', 'sandbox.js');

function startSandbox(
  args: string[],
  envFile: string,
): { child: ChildProcessWithoutNullStreams; output: () => string } {
  const child = spawn(process.execPath, [SANDBOX, ...args], {
    env: { ...process.env, SANDBOX_ENV_FILE: envFile },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

function exitOf(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function parseEnvFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

describe('the local sandbox (npm start)', () => {
  it('processes every sample end to end and prints what happened', async () => {
    const envFile = join(await mkdtemp(join(tmpdir(), 'sandbox-')), 'sandbox.env');
    const sandbox = startSandbox(['--once'], envFile);
    expect(await exitOf(sandbox.child)).toBe(0);
    const output = sandbox.output();
    expect(output).toMatch(
      /sample-leaver-alice \(alice@contoso\.com\): succeeded \| disableAccount=succeeded, resetPassword=succeeded, revokeSignInSessions=succeeded \| revocation verified: yes/,
    );
    expect(output).toMatch(
      /sample-mfa-bob \(bob@contoso\.com\): succeeded \| revokeSignInSessions=succeeded \| revocation verified: yes/,
    );
    expect(output).toMatch(/sample-leaver-guest .*: succeeded/);
    expect(output).toMatch(/sample-leaver-synced .*: failed .*OnPremisesMastered/);
    expect(output).toMatch(/sample-leaver-breakglass .*: refused .*ProtectedAccount/);
    expect(output).toMatch(/sample-invalid \(invalid\): failed \| none \| InvalidEvent/);
    expect(output).toMatch(
      /sample-leaver-with-leave-date \(bob@contoso\.com\): scheduled \| leave date /,
    );
    expect(output).toMatch(/Queue employee-leaving: 0 waiting, 1 scheduled, 3 dead-lettered\./);
    // A guardrail trip on a runaway MFA feed (limit 3, bob's sample counted first).
    expect(output).toMatch(
      /Guardrail: a runaway feed of 4 more mfa\.enabled events against the sandbox's limit of 3 per 60 min: 2 ran, 2 held/,
    );
    expect(output).toMatch(
      /sample-runaway-mfa-\d: The blast-radius guardrail for mfa\.enabled events tripped/,
    );
    // Outcome events as a subscriber of the topic sees them: one per final record.
    const outcomes =
      /Outcome events on topic offboarding-outcomes \(subscription hr-itsm\): 10 \(([^)]*)\)/.exec(
        output,
      );
    expect(outcomes?.[1]?.split(', ').sort()).toEqual([
      '1 refused',
      '2 failed',
      '2 held',
      '5 succeeded',
    ]);
    expect(output).toMatch(/"type": "offboarding\.outcome\.succeeded"/);
    expect(output).not.toMatch(/sandbox failed/);
  }, 90_000);

  it('keeps running for offboard commands and stops cleanly on Ctrl-C', async () => {
    const envFile = join(await mkdtemp(join(tmpdir(), 'sandbox-')), 'sandbox.env');
    const sandbox = startSandbox([], envFile);
    await waitFor(
      'the sandbox to be ready',
      () => sandbox.output().includes('Press Ctrl-C to stop.'),
      60_000,
    );

    const env = parseEnvFile(await readFile(envFile, 'utf8'));
    const audit = await runCli(['audit', '--user', 'alice@contoso.com', '--json'], env);
    expect(audit.code).toBe(0);
    expect(JSON.parse(audit.stdout)).toEqual([
      expect.objectContaining({ eventId: 'sample-leaver-alice', outcome: 'succeeded' }),
    ]);
    const dlq = await runCli(['dlq', 'list', '--queue', 'employee-leaving', '--json'], env);
    expect((JSON.parse(dlq.stdout) as unknown[]).length).toBe(3);

    const exited = exitOf(sandbox.child);
    sandbox.child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(sandbox.output()).toContain('Stopping the sandbox...');
  }, 90_000);
});
