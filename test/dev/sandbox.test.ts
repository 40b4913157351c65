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
    // One table row per event: event, user, outcome, actions, verified, note.
    const row = (...cells: string[]) =>
      new RegExp(
        `^${cells.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\s+')}`,
        'm',
      );
    expect(output).toMatch(/^event\s+user\s+outcome\s+actions\s+verified\s+note$/m);
    expect(output).toMatch(
      row(
        'sample-leaver-alice',
        'alice@contoso.com',
        'succeeded',
        'disable ok, reset ok, revoke ok',
        'yes',
      ),
    );
    expect(output).toMatch(
      row('sample-mfa-bob', 'bob@contoso.com', 'succeeded', 'revoke ok', 'yes'),
    );
    expect(output).toMatch(/^sample-leaver-guest\s+carol_fabrikam\.com#EXT#@\S*\s+succeeded/m);
    expect(output).toMatch(
      row(
        'sample-leaver-synced',
        'dave.synced@contoso.com',
        'failed',
        'disable FAILED, reset FAILED, revoke ok',
        'yes',
        'OnPremisesMastered:',
      ),
    );
    expect(output).toMatch(
      row(
        'sample-leaver-breakglass',
        'breakglass@contoso.com',
        'refused',
        'disable -, revoke -',
        'ProtectedAccount:',
      ),
    );
    expect(output).toMatch(
      row(
        'sample-invalid',
        '(invalid)',
        'failed',
        'none',
        'InvalidEvent: data.user must not contain "/"',
      ),
    );
    expect(output).toMatch(
      row(
        'sample-leaver-with-leave-date',
        'bob@contoso.com',
        'scheduled',
        'disable -, revoke -',
        'leave date',
      ),
    );
    // The leave date, and two sign-in watch checks for each departure whose revocation was verified
    // (alice, the guest, the synced user whose disable must be done on-premises).
    expect(output).toMatch(/Queue employee-leaving: 0 waiting, 7 scheduled, 3 dead-lettered\./);
    // One check of the sign-in watch, run with the watch's clock at its due time.
    expect(output).toMatch(/^Sign-in watch: 2 checks of sample-leaver-alice scheduled/m);
    expect(output).toMatch(/^ {2}signed in after the cut-off \(1\)$/m);
    expect(output).toMatch(/^ {2}\S+ Salesforce from 198\.51\.100\.23 \(.*CAE token: no\)$/m);
    expect(output).toMatch(/^ {2}the SignInAfterCutoff line was logged/m);
    // A guardrail trip on a runaway MFA feed (limit 3, bob's sample counted first): every held
    // event has its row.
    expect(output).toMatch(/\(sample-mfa-bob counted first\): 2 ran, 2 held/);
    const held = output.match(
      /^sample-runaway-mfa-\d\s+runaway\d@contoso\.com\s+held\s+revoke -\s+The blast-radius guardrail for mfa\.enabled/gm,
    );
    expect(held).toHaveLength(2);
    // Outcome events as a subscriber of the topic sees them: one per final record, summarised.
    const outcomes =
      /Outcome events on topic offboarding-outcomes \(subscription hr-itsm\): 11 \(([^)]*)\)/.exec(
        output,
      );
    expect(outcomes?.[1]?.split(', ').sort()).toEqual([
      '1 refused',
      '1 signin-after-cutoff',
      '2 failed',
      '2 held',
      '5 succeeded',
    ]);
    expect(output).toMatch(/^One of them: offboarding\.outcome\.\w+ for sample-/m);
    expect(output).toMatch(/^ {2}access ends in (CAE-aware|other) apps by \S+/m);
    // The outcome event is summarised, not dumped as JSON.
    expect(output).not.toMatch(/^\{$/m);
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

    // Events sent later get their row as they end, without --verbose.
    const wave = await runCli(
      [
        'enqueue',
        '--type',
        'mfa.enabled',
        '--csv',
        'samples/mfa-wave.csv',
        '--wave',
        'w1',
        '--rate',
        '0',
      ],
      env,
    );
    expect(wave.code).toBe(0);
    await waitFor(
      'a row for each event of the wave',
      () => (sandbox.output().match(/^\d\d:\d\d:\d\d {2}mfa\.enabled-w1-/gm) ?? []).length === 2,
      30_000,
    );
    expect(sandbox.output()).toMatch(
      /^\d\d:\d\d:\d\d {2}mfa\.enabled-w1-\S+\s+bob@contoso\.com\s+succeeded/m,
    );

    const exited = exitOf(sandbox.child);
    sandbox.child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(sandbox.output()).toContain('Stopping the sandbox...');
  }, 90_000);
});
