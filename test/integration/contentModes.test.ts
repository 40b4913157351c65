/**
 * Events as CloudEvents producers send them over Service Bus, built by the official CloudEvents
 * SDK (`cloudevents`): binary content mode (attributes as `cloudEvents:` or `cloudEvents_`
 * application properties, data as the body) and the JSON format's `data_base64`. Sent with the
 * real Service Bus SDK to the AMQP stand-in, run by the real handlers through the local runner,
 * and read back with the `offboard` command.
 */
import { ServiceBusClient, type ServiceBusMessage } from '@azure/service-bus';
import { CloudEvent, HTTP } from 'cloudevents';
import { randomUUID } from 'node:crypto';
import { runCli } from '../support/cli';
import { startPipeline, type Pipeline } from '../support/runner';
import { recordsSettled, waitFor } from '../support/wait';
import { startWorld, type World } from '../support/world';

let world: World;
let pipeline: Pipeline;
let client: ServiceBusClient;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  world = await startWorld();
  pipeline = startPipeline(world);
  client = new ServiceBusClient(world.serviceBus.connectionString);
  cliEnv = { ...world.env, ...world.identity.envFor() };
});
afterAll(async () => {
  await client.close();
  await pipeline.stop();
  await world.stop();
});

type Queue = 'employee-leaving' | 'mfa-enabled';

async function send(queue: Queue, message: ServiceBusMessage): Promise<void> {
  const sender = client.createSender(queue);
  try {
    await sender.sendMessages(message);
  } finally {
    await sender.close();
  }
}

function sdkEvent(
  type: string,
  data: unknown,
  extra: Record<string, unknown> = {},
): CloudEvent<unknown> {
  return new CloudEvent<unknown>({
    id: `evt-${randomUUID()}`,
    source: '/hr/workday',
    type,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data,
    ...extra,
  });
}

/**
 * The AMQP binding's binary content mode. The SDK has no AMQP binding, so its HTTP binary
 * serialization gives the attributes (`ce-` headers, canonical strings) and the data bytes; they
 * are mapped as the AMQP binding says: each attribute to `<prefix><name>`, datacontenttype to the
 * content type. With `native`, `time` goes as an AMQP timestamp (a Date), as the binding prefers.
 */
function amqpBinary(
  event: CloudEvent<unknown>,
  options: { prefix?: string; native?: boolean } = {},
): ServiceBusMessage {
  const { headers, body } = HTTP.binary(event);
  const applicationProperties: Record<string, string | Date> = {};
  for (const [header, value] of Object.entries(headers)) {
    if (!header.startsWith('ce-')) continue;
    const name = header.slice('ce-'.length);
    applicationProperties[`${options.prefix ?? 'cloudEvents:'}${name}`] =
      options.native && name === 'time' ? new Date(String(value)) : String(value);
  }
  return {
    body: Buffer.from(String(body)),
    contentType: String(headers['content-type']),
    messageId: randomUUID(),
    applicationProperties,
  };
}

/** The JSON event format as the SDK writes it (data_base64 for binary data). */
function amqpStructured(event: CloudEvent<unknown>): ServiceBusMessage {
  const { headers, body } = HTTP.structured(event);
  return {
    body: Buffer.from(String(body)),
    contentType: String(headers['content-type']),
    messageId: randomUUID(),
  };
}

const records = (eventId: string) => world.runtime.audit.findByEventId(eventId);

describe('binary content mode', () => {
  it('runs a departure sent in binary mode, and `audit --event` finds it', async () => {
    const user = world.newUser();
    const event = sdkEvent('employee.leaving', { user: user.upn, resetPassword: false });
    await send('employee-leaving', amqpBinary(event, { native: true }));
    const [record] = await recordsSettled(
      world.runtime.audit,
      [event.id],
      (r) => r.outcome !== 'in-progress',
      'the binary-mode departure',
    );
    expect(record).toMatchObject({
      eventId: event.id,
      source: '/hr/workday',
      eventType: 'employee.leaving',
      user: user.upn,
      outcome: 'succeeded',
    });
    expect(world.graph.writes().map((w) => w.path)).toContain(
      `/v1.0/users/${user.id}/revokeSignInSessions`,
    );

    const audit = await runCli(['audit', '--event', event.id, '--json'], cliEnv);
    expect(audit.stderr).toBe('');
    expect(audit.code).toBe(0);
    expect(JSON.parse(audit.stdout)).toEqual([
      expect.objectContaining({ eventId: event.id, outcome: 'succeeded' }),
    ]);
  });

  it('reads the cloudEvents_ prefix with canonical strings alike', async () => {
    const user = world.newUser();
    const event = sdkEvent('mfa.enabled', { user: user.upn });
    await send('mfa-enabled', amqpBinary(event, { prefix: 'cloudEvents_' }));
    const [record] = await recordsSettled(
      world.runtime.audit,
      [event.id],
      (r) => r.outcome !== 'in-progress',
      'the cloudEvents_ event',
    );
    expect(record).toMatchObject({ eventType: 'mfa.enabled', outcome: 'succeeded' });
  });

  it('gives a binary event and its structured twin one identity (source + id): a duplicate', async () => {
    const user = world.newUser();
    const event = sdkEvent('mfa.enabled', { user: user.upn });
    await send('mfa-enabled', amqpBinary(event, { native: true }));
    await recordsSettled(
      world.runtime.audit,
      [event.id],
      (r) => r.outcome === 'succeeded',
      'the binary-mode original',
    );
    const writes = world.graph.writes().length;
    await send('mfa-enabled', amqpStructured(event));
    await waitFor('the structured twin counted as a duplicate', async () =>
      (await records(event.id))[0]?.duplicates === 1 ? true : undefined,
    );
    expect(await records(event.id)).toHaveLength(1);
    expect(world.graph.writes()).toHaveLength(writes);
  });

  it('dead-letters an invalid binary event with its id, and `dlq list` shows id and user', async () => {
    const event = sdkEvent('employee.leaving', { user: 'nobody/else@contoso.com' });
    await send('employee-leaving', amqpBinary(event));
    await waitFor(
      'the invalid binary event in the dead-letter queue',
      () => world.serviceBus.stats('employee-leaving').deadLettered >= 1,
      30_000,
    );
    const [record] = await records(event.id);
    expect(record).toMatchObject({
      outcome: 'failed',
      errorCode: 'InvalidEvent',
      errorMessage: 'data.user must not contain "/"',
    });

    const list = await runCli(['dlq', 'list', '--queue', 'employee-leaving', '--json'], cliEnv);
    expect(list.code).toBe(0);
    const entries = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
    expect(entries).toContainEqual(
      expect.objectContaining({
        eventId: event.id,
        user: 'nobody/else@contoso.com',
        lastAuditedError: 'InvalidEvent: data.user must not contain "/"',
      }),
    );
    const table = await runCli(['dlq', 'list', '--queue', 'employee-leaving'], cliEnv);
    expect(table.stdout).toMatch(new RegExp(`${event.id}\\s+nobody/else@contoso\\.com`));
  });
});

describe('data_base64 (JSON event format)', () => {
  it('runs an event whose data the SDK wrote as data_base64', async () => {
    const user = world.newUser();
    const event = sdkEvent(
      'mfa.enabled',
      new Uint8Array(Buffer.from(JSON.stringify({ user: user.upn, ticket: 'CHG-1' }))),
    );
    const message = amqpStructured(event);
    expect(String(message.body)).toContain('"data_base64"');
    await send('mfa-enabled', message);
    const [record] = await recordsSettled(
      world.runtime.audit,
      [event.id],
      (r) => r.outcome !== 'in-progress',
      'the data_base64 event',
    );
    expect(record).toMatchObject({ user: user.upn, ticket: 'CHG-1', outcome: 'succeeded' });
  });
});

describe('other content modes', () => {
  it('rejects a batch, naming the mode, and audits the message', async () => {
    const event = sdkEvent('mfa.enabled', { user: 'alice@contoso.com' });
    const messageId = randomUUID();
    await send('mfa-enabled', {
      body: Buffer.from(JSON.stringify([event.toJSON()])),
      contentType: 'application/cloudevents-batch+json',
      messageId,
    });
    const [record] = await waitFor('the batch audited', async () => {
      const found = await records(`message:${messageId}`);
      return found.length > 0 ? found : undefined;
    });
    expect(record).toMatchObject({ outcome: 'failed', errorCode: 'InvalidEvent' });
    expect(record?.errorMessage).toMatch(
      /^batched content mode \(application\/cloudevents-batch\+json\) is not supported/,
    );
  });
});
