import { ServiceBusClient } from '@azure/service-bus';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENQUEUE_SOURCE } from '../../cli/enqueue';
import { BREAKGLASS_ID } from '../../dev/graph-standin/seed';
import { runCli } from '../support/cli';
import { startWorld, type World } from '../support/world';

// No consumer runs here: what the command sent stays on the queue to be counted.
let world: World;
let cliEnv: Record<string, string>;
let dir: string;

beforeAll(async () => {
  world = await startWorld();
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-test' };
  dir = await mkdtemp(join(tmpdir(), 'offboard-waves-'));
});
afterAll(async () => {
  await world.stop();
});

async function csv(text: string): Promise<string> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.csv`);
  await writeFile(path, text);
  return path;
}

interface Summary {
  wave: string;
  sent: number;
  eventIds: string[];
}

async function enqueue(path: string, ...extra: string[]): Promise<Summary> {
  const run = await runCli(
    ['enqueue', '--type', 'mfa.enabled', '--csv', path, '--json', '--rate', '0', ...extra],
    cliEnv,
  );
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as Summary;
}

const stats = () => world.serviceBus.stats('mfa-enabled');

describe('offboard enqueue waves', () => {
  it('two waves with the same user are two events; the same file and wave again is none new', async () => {
    const path = await csv('user,ticket\nwave.same@contoso.com,CHG-1\n');
    const before = stats();

    const first = await enqueue(path, '--wave', 'mfa-2026-11');
    expect(first).toMatchObject({ wave: 'mfa-2026-11', sent: 1 });
    expect(stats().active).toBe(before.active + 1);

    const resent = await enqueue(path, '--wave', 'mfa-2026-11');
    expect(resent.eventIds).toEqual(first.eventIds);
    expect(stats()).toMatchObject({
      active: before.active + 1,
      duplicatesDropped: before.duplicatesDropped + 1,
    });

    const second = await enqueue(path, '--wave', 'mfa-2026-12');
    expect(second.eventIds).toHaveLength(1);
    expect(second.eventIds[0]).not.toBe(first.eventIds[0]);
    expect(stats().active).toBe(before.active + 2);
  });

  it('without --wave generates one, prints it, and sends from the documented source', async () => {
    const path = await csv('user\nwave.generated@contoso.com\n');
    const summary = await enqueue(path);
    expect(summary.wave).toMatch(/^\d{8}-[0-9a-f]{12}$/);
    const text = await runCli(['enqueue', '--type', 'mfa.enabled', '--csv', path], cliEnv);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^sent 1 event\(s\) to mfa-enabled in wave \d{8}-[0-9a-f]{12}/m);
    expect(text.stdout).toMatch(/--wave \d{8}-[0-9a-f]{12}/);

    const client = new ServiceBusClient(world.env.ServiceBusConnection!);
    const receiver = client.createReceiver('mfa-enabled');
    const peeked = await receiver.peekMessages(100);
    await client.close();
    const ours = peeked.filter((m) => summary.eventIds.includes(String(m.messageId)));
    expect(ours).toHaveLength(1);
    expect(ours[0]?.body).toMatchObject({ source: ENQUEUE_SOURCE, id: summary.eventIds[0] });
    expect(ENQUEUE_SOURCE).toBe('offboard-cli/enqueue');
  });

  it.each([['has space'], ['x'.repeat(41)], ['bad\u001bwave'], ['']])(
    'refuses --wave %j as a usage error',
    async (wave) => {
      const path = await csv('user\nwave.invalid@contoso.com\n');
      const run = await runCli(
        ['enqueue', '--type', 'mfa.enabled', '--csv', path, '--wave', wave],
        cliEnv,
      );
      expect(run.code).toBe(64);
      expect(run.stderr).toMatch(/--wave/);
      expect(run.stderr).not.toContain('\u001b');
    },
  );
});

describe('offboard enqueue paces a wave at the source by default', () => {
  it('spreads 2,000 rows over the write budget as scheduled messages, returns at once, and says when it finishes', async () => {
    const rows = Array.from({ length: 2000 }, (_, i) => `paced.user${i}@contoso.com`);
    const path = await csv(`user\n${rows.join('\n')}\n`);
    const before = stats();
    const started = Date.now();
    const run = await runCli(
      ['enqueue', '--type', 'mfa.enabled', '--csv', path, '--json', '--wave', 'paced-1'],
      { ...cliEnv, PACING_WRITES_PER_SECOND: '20' },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout) as Summary & {
      eventsPerSecond: number;
      finishesAt: string;
    };
    // 20 writes/s less the 5 % left to departures, one write per MFA event.
    expect(summary.eventsPerSecond).toBe(19);
    const finishes = Date.parse(summary.finishesAt) - started;
    expect(finishes).toBeGreaterThan((2000 / 19) * 1000 - 5_000);
    expect(finishes).toBeLessThan((2000 / 19) * 1000 + 30_000);
    // Only the first batch is visible now; the rest waits on Service Bus for its time.
    const after = stats();
    expect(after.scheduled - before.scheduled).toBeGreaterThan(1800);
    expect(after.active - before.active).toBeLessThan(200);
  });

  it('--rate 0 sends everything now', async () => {
    const path = await csv('user\nnow.a@contoso.com\nnow.b@contoso.com\n');
    const before = stats();
    await enqueue(path, '--wave', 'now-1');
    expect(stats().active).toBe(before.active + 2);
    expect(stats().scheduled).toBe(before.scheduled);
  });
});

describe('enqueue checks the file as a whole before anything is sent', () => {
  const refused = async (type: string, text: string, ...extra: string[]) => {
    const before = world.serviceBus.stats(
      type === 'mfa.enabled' ? 'mfa-enabled' : 'employee-leaving',
    );
    const run = await runCli(
      ['enqueue', '--type', type, '--csv', await csv(text), '--rate', '0', ...extra],
      cliEnv,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/nothing was sent/);
    const after = world.serviceBus.stats(
      type === 'mfa.enabled' ? 'mfa-enabled' : 'employee-leaving',
    );
    expect(after.active + after.scheduled).toBe(before.active + before.scheduled);
    return run.stderr;
  };

  it('reports the same person named by UPN and by object id (resolved in the directory)', async () => {
    const user = world.newUser();
    const stderr = await refused('employee.leaving', `user\n${user.upn}\n${user.id}\n`);
    expect(stderr).toMatch(new RegExp(`line 3: the same person as line 2 \\(object ${user.id}\\)`));
  });

  it('reports the same person under two tickets (two password resets)', async () => {
    const user = world.newUser();
    const stderr = await refused(
      'employee.leaving',
      `user,ticket\n${user.upn},HR-1\n${user.upn.toUpperCase()},HR-2\n`,
    );
    expect(stderr).toMatch(/line 3: the same person as line 2/);
  });

  it('refuses a protected account, named as in PROTECTED_USERS or by its object id', async () => {
    const other = world.newUser();
    expect(await refused('mfa.enabled', `user\n${other.upn}\nbreakglass@contoso.com\n`)).toMatch(
      /line 3: breakglass@contoso.com is a protected account/,
    );
    expect(await refused('mfa.enabled', `user\n${BREAKGLASS_ID}\n`)).toMatch(
      /line 2: .* is the protected account breakglass@contoso.com/,
    );
  });

  it('a departures wave above the ceiling needs --confirm-size with its exact size', async () => {
    const users = Array.from({ length: 3 }, () => world.newUser());
    const file = ['user', ...users.map((u) => u.upn)].join('\n') + '\n';
    const ceiling = { ...cliEnv, ENQUEUE_CONFIRM_DEPARTURES_ABOVE: '2' };
    const path = await csv(file);
    const args = ['enqueue', '--type', 'employee.leaving', '--csv', path, '--rate', '0'];
    const unconfirmed = await runCli(args, ceiling);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr).toMatch(/3 departures is more than 2 .* --confirm-size 3/);
    const wrong = await runCli([...args, '--confirm-size', '30'], ceiling);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/--confirm-size 30 does not match the 3 departures/);
    const confirmed = await runCli([...args, '--confirm-size', '3', '--json'], ceiling);
    expect(confirmed.stderr).toBe('');
    expect(confirmed.code).toBe(0);
    expect((JSON.parse(confirmed.stdout) as Summary).sent).toBe(3);
  });

  it('the default ceiling is the departures guardrail limit', async () => {
    const users = Array.from({ length: 3 }, () => world.newUser());
    const path = await csv(['user', ...users.map((u) => u.upn)].join('\n') + '\n');
    const run = await runCli(
      ['enqueue', '--type', 'employee.leaving', '--csv', path, '--dry-run'],
      {
        ...cliEnv,
        GUARDRAIL_DEPARTURES_PER_WINDOW: '2',
      },
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/3 departures is more than 2/);
  });

  it('--dry-run prints the wave id the real run uses', async () => {
    const path = await csv(`user\n${world.newUser().upn}\n`);
    const dry = await runCli(
      ['enqueue', '--type', 'mfa.enabled', '--csv', path, '--dry-run', '--json'],
      cliEnv,
    );
    expect(dry.code).toBe(0);
    const planned = JSON.parse(dry.stdout) as { wave: string; eventIds: string[] };
    const real = await enqueue(path);
    expect(real.wave).toBe(planned.wave);
    expect(real.eventIds).toEqual(planned.eventIds);
  });
});
