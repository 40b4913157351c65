/**
 * The outcome topic sink (shared/adapters/outcomeTopic.ts) against a fake client: what it sends,
 * that it sends nothing for a record that is not final, that one sender is reused, that the SDK is
 * neither loaded nor connected before the first final record, and that every failure (a hang
 * included) ends as a retryable MessagingUnavailable. The real SDK against the stand-in is in
 * test/integration/outcomeEvents.test.ts.
 */
import type { ServiceBusClient, ServiceBusMessage } from '@azure/service-bus';
import type { AppConfig } from '../../shared/app/config';
import { Budgets } from '../../shared/adapters/deadline';
import { OutcomeTopicSink, createOutcomeTopicSink } from '../../shared/adapters/outcomeTopic';
import { OffboardingError } from '../../shared/core/errors';
import { toOutcomeEvent } from '../../shared/core/outcomeEvent';
import type { AuditRecord } from '../../shared/core/ports';

const record: AuditRecord = {
  identityKey: 'k',
  contentDigest: 'd',
  eventId: 'evt-1',
  eventType: 'employee.leaving',
  source: '/hr/workday',
  objectId: 'a11ce000-0000-4000-8000-000000000001',
  requestedActions: ['revokeSignInSessions'],
  actions: [{ action: 'revokeSignInSessions', status: 'succeeded' }],
  graphRequestIds: [],
  outcome: 'succeeded',
  notes: [],
  dryRun: false,
  attempts: 1,
  duplicates: 0,
  firstAttemptAt: '2026-11-30T09:00:00.000Z',
  lastAttemptAt: '2026-11-30T09:00:01.000Z',
};

interface Sent {
  topic: string;
  message: ServiceBusMessage;
  signal: AbortSignal | undefined;
}

function fakeClient(
  send: (sent: Sent) => Promise<void> = () => Promise.resolve(),
  openLink: (signal: AbortSignal | undefined) => Promise<unknown> = () => Promise.resolve({}),
) {
  const sent: Sent[] = [];
  const senders: string[] = [];
  const linksOpened: (AbortSignal | undefined)[] = [];
  let connected = 0;
  const client = {
    createSender(topic: string) {
      senders.push(topic);
      return {
        sendMessages(message: ServiceBusMessage, options?: { abortSignal?: AbortSignal }) {
          const entry = { topic, message, signal: options?.abortSignal };
          sent.push(entry);
          return send(entry);
        },
        // The SDK opens the sender's link to learn the largest message it takes.
        createMessageBatch(options?: { abortSignal?: AbortSignal }) {
          linksOpened.push(options?.abortSignal);
          return openLink(options?.abortSignal);
        },
        close: () => Promise.resolve(),
      };
    },
  } as unknown as ServiceBusClient;
  const lazy = () => {
    connected += 1;
    return client;
  };
  return { lazy, sent, senders, linksOpened, connections: () => connected };
}

describe('the outcome topic sink', () => {
  it('sends the CloudEvent as UTF-8 JSON, MessageId = event id, filterable properties', async () => {
    const fake = fakeClient();
    const sink = new OutcomeTopicSink('offboarding-outcomes', fake.lazy);
    await sink.accept(record);

    const event = toOutcomeEvent(record);
    expect(fake.sent).toHaveLength(1);
    const [{ topic, message, signal }] = fake.sent as [Sent];
    expect(topic).toBe('offboarding-outcomes');
    expect(message.messageId).toBe(event?.id);
    expect(message.contentType).toBe('application/cloudevents+json');
    expect(message.subject).toBe(record.objectId);
    expect(message.applicationProperties).toEqual({
      outcome: 'succeeded',
      eventType: 'employee.leaving',
      dryRun: false,
    });
    expect(Buffer.isBuffer(message.body)).toBe(true);
    expect(JSON.parse((message.body as Buffer).toString('utf8'))).toEqual(event);
    expect(signal).toBeInstanceOf(AbortSignal);
  });

  it('sends nothing for a record that is not final, and does not even connect', async () => {
    const fake = fakeClient();
    const sink = new OutcomeTopicSink('t', fake.lazy);
    await sink.accept({ ...record, outcome: 'scheduled' });
    await sink.accept({ ...record, outcome: 'failed', retryable: true });
    expect(fake.sent).toHaveLength(0);
    expect(fake.connections()).toBe(0);
  });

  it('creates one sender and reuses it', async () => {
    const fake = fakeClient();
    const sink = createOutcomeTopicSink(
      { outcomes: { topic: 'outcomes' } } as AppConfig,
      fake.lazy,
    );
    await sink.accept(record);
    await sink.accept({ ...record, eventId: 'evt-2', identityKey: 'k2' });
    await sink.accept({ ...record, eventId: 'evt-3', identityKey: 'k3' });
    expect(fake.senders).toEqual(['outcomes']);
    expect(fake.sent.map((s) => s.topic)).toEqual(['outcomes', 'outcomes', 'outcomes']);
  });

  it("warming up opens the sender's link and sends nothing; records then use that sender", async () => {
    const fake = fakeClient();
    const sink = new OutcomeTopicSink('outcomes', fake.lazy);
    await sink.warmUp();
    expect(fake.senders).toEqual(['outcomes']);
    expect(fake.linksOpened).toHaveLength(1);
    expect(fake.linksOpened[0]).toBeInstanceOf(AbortSignal);
    expect(fake.sent).toHaveLength(0);
    await sink.accept(record);
    expect(fake.senders).toEqual(['outcomes']);
    expect(fake.sent).toHaveLength(1);
  });

  it('a warm-up that fails rejects, and the next record still tries on its own', async () => {
    const fake = fakeClient(undefined, () => Promise.reject(new Error('entity not found')));
    const sink = new OutcomeTopicSink('outcomes', fake.lazy);
    await expect(sink.warmUp()).rejects.toThrow(/entity not found/);
    await sink.accept(record);
    expect(fake.sent).toHaveLength(1);
  });

  it('a failure is a retryable MessagingUnavailable naming the topic and the event', async () => {
    const fake = fakeClient(() => Promise.reject(new Error('connection reset')));
    const sink = new OutcomeTopicSink('offboarding-outcomes', fake.lazy);
    const failure = await sink.accept(record).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(OffboardingError);
    expect(failure).toMatchObject({ code: 'MessagingUnavailable', retryable: true });
    expect(String((failure as Error).message)).toMatch(
      /publish outcome event [0-9a-f]{40} to topic offboarding-outcomes: connection reset/,
    );
  });

  describe('a topic that never answers', () => {
    beforeEach(() =>
      jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] }),
    );
    afterEach(() => jest.useRealTimers());

    it('ends after the Service Bus budget with a retryable MessagingUnavailable, and aborts the send', async () => {
      const fake = fakeClient(() => new Promise(() => undefined));
      const sink = new OutcomeTopicSink('t', fake.lazy);
      const failure = sink.accept(record).catch((e: unknown) => e);
      await jest.advanceTimersByTimeAsync(Budgets.serviceBusCallMs);
      expect(await failure).toMatchObject({ code: 'MessagingUnavailable', retryable: true });
      expect(String(await failure)).toMatch(/did not answer within 30 s/);
      expect(fake.sent[0]?.signal?.aborted).toBe(true);
    });

    it('a warm-up ends after the same budget, and aborts the link it was opening', async () => {
      const fake = fakeClient(undefined, () => new Promise(() => undefined));
      const sink = new OutcomeTopicSink('t', fake.lazy);
      const failure = sink.warmUp().catch((e: unknown) => e);
      await jest.advanceTimersByTimeAsync(Budgets.serviceBusCallMs);
      expect(String(await failure)).toMatch(/open a sender to topic t.*did not answer within 30 s/);
      expect(fake.linksOpened[0]?.aborted).toBe(true);
    });
  });
});

it('loading the adapter and building the sink neither loads the Service Bus SDK nor connects', () => {
  let sdkLoaded = false;
  let connected = false;
  jest.isolateModules(() => {
    jest.doMock('@azure/service-bus', () => {
      sdkLoaded = true;
      return {};
    });
    type Adapter = typeof import('../../shared/adapters/outcomeTopic');
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh module registry
    const adapter = require('../../shared/adapters/outcomeTopic') as Adapter;
    adapter.createOutcomeTopicSink({ outcomes: { topic: 't' } } as AppConfig, () => {
      connected = true;
      return {} as ServiceBusClient;
    });
  });
  expect(sdkLoaded).toBe(false);
  expect(connected).toBe(false);
});
