import { ServiceBusClient } from '@azure/service-bus';
import type { TokenCredential } from '@azure/identity';
import { createServer, type Server, type Socket } from 'node:net';
import { Budgets, boundedCredential } from '../../shared/adapters/deadline';
import { GraphDirectory } from '../../shared/adapters/graphDirectory';
import { ServiceBusScheduler } from '../../shared/adapters/serviceBusScheduler';

/**
 * Every wait has a bound: a dependency that accepts a connection (or a call) and never answers
 * ends in a retryable error naming it, within its budget. Timers are faked so the budgets pass in
 * an instant; the sockets are real.
 */
async function silentServer(): Promise<{ port: number; stop: () => void }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    stop: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

beforeEach(() => jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] }));
afterEach(() => jest.useRealTimers());

const neverAnswers: TokenCredential = { getToken: () => new Promise(() => undefined) };

it('ends a token request that never answers with a retryable AuthenticationFailed', async () => {
  const credential = boundedCredential(neverAnswers, 'the managed identity');
  const failure = credential
    .getToken('https://graph.microsoft.com/.default')
    .catch((e: unknown) => e);
  await jest.advanceTimersByTimeAsync(Budgets.tokenMs);
  expect(await failure).toMatchObject({ code: 'AuthenticationFailed', retryable: true });
  expect(String(await failure)).toMatch(/No token from the managed identity within 30 s/);
});

it('ends a Graph call whose token never comes, as AuthenticationFailed (not a hang, not a 5xx)', async () => {
  const directory = new GraphDirectory({
    config: {
      endpoint: 'https://graph.microsoft.com',
      scope: 'https://graph.microsoft.com/.default',
      credential: 'managedidentity',
      maxRetries: 0,
      maxRetryWaitSeconds: 0,
      signInLogVersion: 'beta',
    },
    credential: boundedCredential(neverAnswers, 'the managed identity'),
  });
  const failure = directory
    .getUser({ kind: 'upn', value: 'a@contoso.com' })
    .catch((e: unknown) => e);
  await jest.advanceTimersByTimeAsync(Budgets.tokenMs);
  expect(await failure).toMatchObject({ code: 'AuthenticationFailed', retryable: true });
});

it('ends a Service Bus schedule on a broker that never answers with a retryable MessagingUnavailable', async () => {
  const broker = await silentServer();
  const client = new ServiceBusClient(
    `Endpoint=sb://127.0.0.1:${broker.port};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;`,
  );
  const scheduler = new ServiceBusScheduler(client);
  try {
    const failure = scheduler
      .schedule('q', { body: {}, messageId: 'm', applicationProperties: {} }, new Date())
      .catch((e: unknown) => e);
    await jest.advanceTimersByTimeAsync(Budgets.serviceBusCallMs);
    expect(await failure).toMatchObject({ code: 'MessagingUnavailable', retryable: true });
    expect(String(await failure)).toMatch(/did not answer within 30 s/);
  } finally {
    broker.stop();
    void client.close().catch(() => undefined);
  }
});
