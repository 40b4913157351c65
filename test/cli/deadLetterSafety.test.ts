import {
  ServiceBusClient,
  type ServiceBusReceiver,
  type ServiceBusReceiverOptions,
} from '@azure/service-bus';
import { replayDeadLetters, type DeadLetterClient } from '../../cli/deadLetters';
import { runCli } from '../support/cli';
import { RAW_UNSAFE } from './rawUnsafe';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;
let client: ServiceBusClient;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  world = await startWorld();
  client = new ServiceBusClient(world.env.ServiceBusConnection!);
  cliEnv = { ...world.env, ...world.identity.envFor(), OFFBOARD_OPERATOR: 'ops-test' };
});
afterAll(async () => {
  await client.close();
  await world.stop();
});

/** Sends a message to a queue nobody consumes here and dead-letters it. */
async function deadLetter(
  queue: string,
  body: unknown,
  messageId: string,
  reason: string,
  description: string,
): Promise<void> {
  const sender = client.createSender(queue);
  const receiver = client.createReceiver(queue);
  try {
    await sender.sendMessages({ body, messageId, contentType: 'application/json' });
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    if (!message) throw new Error(`nothing received from ${queue}`);
    await receiver.deadLetterMessage(message, {
      deadLetterReason: reason,
      deadLetterErrorDescription: description,
    });
  } finally {
    await receiver.close();
    await sender.close();
  }
}

describe('dlq list never writes control characters raw', () => {
  const hostileId = 'evt-\u001b[31mred\u009b2J';
  const hostileUser = 'x\u202eevil\u200b@contoso.com';
  const hostileReason = 'Bad\u001b]0;owned\u0007';
  const hostileDescription = 'line1\nline2\u2028line3\u0085';

  beforeAll(async () => {
    await deadLetter(
      'mfa-enabled',
      { ...cloudEvent('mfa.enabled', { user: hostileUser }), id: hostileId },
      'hostile-1',
      hostileReason,
      hostileDescription,
    );
  });

  it('escapes them in the table', async () => {
    const run = await runCli(['dlq', 'list', '--queue', 'mfa-enabled'], cliEnv);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(RAW_UNSAFE);
    expect(run.stdout).toContain('evt-\\u001b[31mred\\u009b2J');
    expect(run.stdout).toContain('x\\u202eevil\\u200b@contoso.com');
    expect(run.stdout).toContain('Bad\\u001b]0;owned\\u0007');
    expect(run.stdout).toContain('line1\\u000aline2\\u2028line3\\u0085');
    expect(run.stdout.trimEnd().split('\n')).toHaveLength(2); // header and one row: no line breaks leak
  });

  it('keeps --json valid JSON with the exact values, escaped', async () => {
    const run = await runCli(['dlq', 'list', '--queue', 'mfa-enabled', '--json'], cliEnv);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(RAW_UNSAFE);
    expect(JSON.parse(run.stdout)).toEqual([
      expect.objectContaining({
        eventId: hostileId,
        user: hostileUser,
        reason: hostileReason,
        description: hostileDescription,
      }),
    ]);
  });
});

describe('dlq replay after a crash between "send the copy" and "complete the dead letter"', () => {
  const queue = 'employee-leaving';
  const stats = () => world.serviceBus.stats(queue);

  /** Completions fail, as if the process died (or lost the lock) right after sending the copy. */
  function failingCompletions(receiver: ServiceBusReceiver): ServiceBusReceiver {
    return new Proxy(receiver, {
      get(target, property) {
        if (property === 'completeMessage')
          return () => Promise.reject(new Error('simulated crash before completing'));
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function'
          ? (value as (...args: unknown[]) => unknown).bind(target)
          : value;
      },
    });
  }
  const crashingAfterSend: DeadLetterClient = {
    createSender: (name: string) => client.createSender(name),
    createReceiver: ((name: string, options?: ServiceBusReceiverOptions) =>
      failingCompletions(
        client.createReceiver(name, options),
      )) as DeadLetterClient['createReceiver'],
  };

  it('leaves exactly one copy on the queue', async () => {
    const event = cloudEvent('employee.leaving', { user: 'crash.test@contoso.com' });
    await deadLetter(queue, event, 'hr-crash-1', 'MaxDeliveryCountExceeded', 'Graph was down');
    expect(stats()).toMatchObject({ active: 0, deadLettered: 1 });

    const { audit, timelines, config } = world.runtime;
    const reads = { audit, timelines, policy: config.policy, route: 'employeeLeaving' as const };
    const crashed = await replayDeadLetters(crashingAfterSend, queue, reads, {
      max: 10,
      ratePerSecond: 0,
      dryRun: false,
    });
    expect(crashed.failed).toHaveLength(1);
    expect(stats()).toMatchObject({ active: 1, deadLettered: 1 });
    const dropped = stats().duplicatesDropped;

    const rerun = await runCli(['dlq', 'replay', '--queue', queue, '--rate', '0'], cliEnv);
    expect(rerun.stderr).toBe('');
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toMatch(/^replayed 1, skipped 0 /m);
    expect(stats()).toMatchObject({ active: 1, deadLettered: 0, duplicatesDropped: dropped + 1 });

    const again = await runCli(['dlq', 'replay', '--queue', queue, '--rate', '0'], cliEnv);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^replayed 0, /m);
    expect(stats()).toMatchObject({ active: 1, deadLettered: 0 });

    const receiver = client.createReceiver(queue);
    const [copy] = await receiver.peekMessages(1);
    await receiver.close();
    expect(copy?.body).toEqual(event);
    expect(copy?.applicationProperties).toMatchObject({ offboardingReplayOf: 'hr-crash-1' });
  });
});

describe('a paced dlq replay', () => {
  const queue = 'mfa-enabled';

  it('schedules the copies at its rate instead of waiting, and says when they will have been processed', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `paced-${i}`);
    for (const id of ids)
      await deadLetter(
        queue,
        cloudEvent('mfa.enabled', { user: `${id}@contoso.com` }),
        id,
        'PacedTest',
        'test',
      );

    const run = await runCli(
      ['dlq', 'replay', '--queue', queue, '--reason', 'PacedTest', '--rate', '0.25', '--json'],
      cliEnv,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as {
      replayed: unknown[];
      pacing: { eventsPerSecond: number; finishesAt: string };
    };
    expect(result.replayed).toHaveLength(8);
    expect(result.pacing.eventsPerSecond).toBe(0.25);
    const start = Date.parse(result.pacing.finishesAt) - 8 * 4000;

    // What is on the queue the moment the command returned: the copies due later are scheduled
    // there (a replay that waited between sends would have left none scheduled), each in its
    // 4-second slot from the start.
    const receiver = client.createReceiver(queue);
    const copies = (await receiver.peekMessages(50)).filter((m) =>
      ids.includes(String(m.applicationProperties?.offboardingReplayOf)),
    );
    await receiver.close();
    expect(copies).toHaveLength(8);
    const scheduled = copies
      .filter((m) => m.state === 'scheduled')
      .map((m) => (m.scheduledEnqueueTimeUtc?.getTime() ?? NaN) - start)
      .sort((a, b) => a - b);
    expect(scheduled.length).toBeGreaterThanOrEqual(4);
    expect(scheduled).toEqual(
      Array.from({ length: scheduled.length }, (_, i) => (8 - scheduled.length + i) * 4000),
    );

    const again = await runCli(
      ['dlq', 'replay', '--queue', queue, '--reason', 'PacedTest'],
      cliEnv,
    );
    expect(again.stdout).toMatch(/^replayed 0, /m);
    expect(again.stdout).not.toMatch(/copies spread at/);

    await deadLetter(
      queue,
      cloudEvent('mfa.enabled', { user: 'paced-text@contoso.com' }),
      'paced-text',
      'PacedText',
      'test',
    );
    const text = await runCli(
      ['dlq', 'replay', '--queue', queue, '--reason', 'PacedText', '--rate', '0.5'],
      cliEnv,
    );
    expect(text.stdout).toMatch(/^replayed 1, skipped \d+ /m);
    expect(text.stdout).toMatch(
      /^copies spread at 0\.5 events\/s: the last will have been processed by about \d{4}-\d\d-\d\dT/m,
    );
  });
});
