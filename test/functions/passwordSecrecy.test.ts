import { TableClient } from '@azure/data-tables';
import { inspect } from 'node:util';
import { ADMIN_ID, ALICE_UPN } from '../../dev/graph-standin/index';
import { createQueueHandler } from '../../shared/adapters/functionHandler';
import { runCli } from '../support/cli';
import { cloudEvent, startWorld, type World } from '../support/world';

let world: World;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.stop();
});

/** Every password the app sent to Graph, read from the stand-in's record of request bodies. */
function passwordsSent(): string[] {
  return world.graph.requests.flatMap((request) => {
    const body = request.body as { passwordProfile?: { password?: unknown } } | undefined;
    const password = body?.passwordProfile?.password;
    return typeof password === 'string' ? [password] : [];
  });
}

it('never lets a generated password reach a log, audit record, error, stdout or stderr', async () => {
  const bob = world.newUser();
  const captured: string[] = [];
  const originalStdout = process.stdout.write.bind(process.stdout);
  const originalStderr = process.stderr.write.bind(process.stderr);
  const capture: typeof process.stdout.write = (chunk: string | Uint8Array) => {
    captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  };
  const consoleSpies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((method) =>
    jest
      .spyOn(console, method)
      .mockImplementation((...args: unknown[]) =>
        captured.push(args.map((a) => inspect(a, { depth: 10 })).join(' ')),
      ),
  );
  process.stdout.write = capture;
  process.stderr.write = capture;

  const handler = createQueueHandler(() => world.runtime, 'employeeLeaving');
  const deliver = async (event: Record<string, unknown>) => {
    try {
      await handler(event, world.context());
    } catch (error) {
      captured.push(
        inspect(error, { depth: 10 }),
        String(error),
        JSON.stringify(error),
        (error as Error).stack ?? '',
      );
    }
  };
  try {
    // A successful reset, a refused one (admin: 403) and one that hits a transient 500.
    await deliver(cloudEvent('employee.leaving', { user: ALICE_UPN, resetPassword: true }));
    await deliver(cloudEvent('employee.leaving', { user: ADMIN_ID, resetPassword: true }));
    world.graph.injectFault({ operation: 'patch', status: 500, userKey: bob.id });
    await deliver(
      cloudEvent('employee.leaving', { user: bob.upn, resetPassword: true, disableAccount: false }),
    );
  } finally {
    process.stdout.write = originalStdout;
    process.stderr.write = originalStderr;
    consoleSpies.forEach((spy) => spy.mockRestore());
  }

  // The command line, as ops run it.
  const cliEnv = { ...world.env, ...world.identity.envFor() };
  const byHand = world.newUser();
  const cliEvent = cloudEvent('employee.leaving', {
    user: byHand.upn,
    resetPassword: true,
    disableAccount: false,
  });
  const processRun = await runCli(['process', '--json'], cliEnv, JSON.stringify(cliEvent));
  const auditRun = await runCli(['audit', '--user', byHand.upn, '--json'], cliEnv);
  expect(processRun.code).toBe(0);
  captured.push(processRun.stdout, processRun.stderr, auditRun.stdout, auditRun.stderr);

  // The audit table as stored.
  const table = TableClient.fromConnectionString(
    world.env.AUDIT_TABLE_CONNECTION_STRING!,
    world.env.AUDIT_TABLE_NAME!,
    {
      allowInsecureConnection: true,
    },
  );
  for await (const entity of table.listEntities()) captured.push(JSON.stringify(entity));
  captured.push(...world.logs.map((l) => l.text));

  const passwords = passwordsSent();
  // Four resets were attempted: Alice (ok), the admin (403), a user behind a 500, one by hand (ok).
  expect(passwords).toHaveLength(4);
  expect(world.graph.lastPasswordOf(byHand.id)).toBe(passwords[3]);
  const everything = captured.join('\n');
  expect(everything.length).toBeGreaterThan(1000);
  expect(everything).toContain('resetPassword');
  for (const password of passwords) {
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect(everything).not.toContain(password);
  }
});
