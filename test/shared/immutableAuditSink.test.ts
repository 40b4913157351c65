/**
 * The immutable audit sink against a fake container (what the SDK client is asked, and how its
 * failures come back): rollover at the block limit, one create per blob, the container created only
 * when missing, failures as AuditUnavailable without the record's content. On Azurite, through the
 * handlers: test/integration/immutableAudit.test.ts.
 */
import type { ContainerClient } from '@azure/storage-blob';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ImmutableAuditSink, blobName } from '../../shared/adapters/immutableAuditLog';
import { Budgets } from '../../shared/adapters/deadline';
import { OffboardingError } from '../../shared/core/errors';
import type { AuditRecord } from '../../shared/core/ports';

const SECRET_LOOKING = 'alice.secret-upn@contoso.com';

function record(n: number): AuditRecord {
  return {
    identityKey: `identity-${n}`,
    contentDigest: `digest-${n}`,
    eventId: `evt-${n}`,
    user: SECRET_LOOKING,
    requestedActions: [],
    actions: [],
    graphRequestIds: [],
    outcome: 'succeeded',
    notes: [],
    dryRun: false,
    attempts: 1,
    duplicates: 0,
    firstAttemptAt: '2026-11-30T10:00:00.000Z',
    lastAttemptAt: '2026-11-30T10:00:00.000Z',
  };
}

/** A storage failure as the SDK raises it (a RestError's shape). */
function storageError(statusCode: number, errorCode: string): Error {
  return Object.assign(new Error(`${errorCode} <details>${SECRET_LOOKING}</details>`), {
    name: 'RestError',
    statusCode,
    details: { errorCode },
  });
}

interface FakeBlob {
  name: string;
  blocks: string[];
}

/** A container whose blobs hold at most `blockLimit` blocks. */
function fakeContainer(blockLimit = 50_000) {
  const calls: string[] = [];
  const blobs = new Map<string, FakeBlob>();
  const state = { containerExists: true, failNext: undefined as Error | undefined };
  const container = {
    createIfNotExists: () => {
      calls.push('createContainer');
      state.containerExists = true;
      return Promise.resolve({ succeeded: true });
    },
    getAppendBlobClient: (name: string) => ({
      createIfNotExists: () => {
        calls.push(`create ${name}`);
        if (!state.containerExists) return Promise.reject(storageError(404, 'ContainerNotFound'));
        if (blobs.has(name)) return Promise.resolve({ succeeded: false });
        blobs.set(name, { name, blocks: [] });
        return Promise.resolve({ succeeded: true });
      },
      appendBlock: (body: Buffer) => {
        calls.push(`append ${name}`);
        if (state.failNext !== undefined) {
          const error = state.failNext;
          state.failNext = undefined;
          return Promise.reject(error);
        }
        const blob = blobs.get(name);
        if (blob === undefined) return Promise.reject(storageError(404, 'BlobNotFound'));
        if (blob.blocks.length >= blockLimit)
          return Promise.reject(storageError(409, 'BlockCountExceedsLimit'));
        blob.blocks.push(body.toString('utf8'));
        return Promise.resolve({});
      },
    }),
  };
  return { container: container as unknown as ContainerClient, calls, blobs, state };
}

const AT = new Date('2026-11-30T10:15:00.000Z');

describe('ImmutableAuditSink', () => {
  it('appends one JSON line per record: format, key, appendedAt, writer, record', async () => {
    const fake = fakeContainer();
    const sink = new ImmutableAuditSink(
      () => fake.container,
      'w1',
      () => AT,
    );
    await sink.accept(record(1));
    const blob = fake.blobs.get(blobName(AT, 'w1', 0));
    expect(blob?.name).toBe('2026/11/30/10/w1-0000.jsonl');
    expect(blob?.blocks).toHaveLength(1);
    const text = blob?.blocks[0] ?? '';
    expect(text.endsWith('\n')).toBe(true);
    expect(JSON.parse(text)).toEqual({
      format: 1,
      identityKey: 'identity-1',
      contentDigest: 'digest-1',
      appendedAt: AT.toISOString(),
      writer: 'w1',
      record: record(1),
    });
  });

  it('creates each blob once, and the container only when it is missing', async () => {
    const fake = fakeContainer();
    fake.state.containerExists = false;
    const sink = new ImmutableAuditSink(
      () => fake.container,
      'w1',
      () => AT,
    );
    await Promise.all([1, 2, 3].map((n) => sink.accept(record(n))));
    const name = blobName(AT, 'w1', 0);
    expect(fake.calls.filter((c) => c.startsWith('create'))).toEqual([
      `create ${name}`,
      'createContainer',
      `create ${name}`,
    ]);
    expect(fake.blobs.get(name)?.blocks).toHaveLength(3);
  });

  it('rolls over to the next segment when a blob is full, once for concurrent appends', async () => {
    const fake = fakeContainer(2);
    const sink = new ImmutableAuditSink(
      () => fake.container,
      'w1',
      () => AT,
    );
    await sink.accept(record(1));
    await sink.accept(record(2));
    await Promise.all([3, 4].map((n) => sink.accept(record(n))));
    await sink.accept(record(5));
    expect([...fake.blobs.values()].map((b) => [b.name, b.blocks.length])).toEqual([
      ['2026/11/30/10/w1-0000.jsonl', 2],
      ['2026/11/30/10/w1-0001.jsonl', 2],
      ['2026/11/30/10/w1-0002.jsonl', 1],
    ]);
  });

  it('starts a new blob every hour', async () => {
    const fake = fakeContainer();
    let now = AT;
    const sink = new ImmutableAuditSink(
      () => fake.container,
      'w1',
      () => now,
    );
    await sink.accept(record(1));
    now = new Date('2026-11-30T11:00:00.000Z');
    await sink.accept(record(2));
    expect([...fake.blobs.keys()]).toEqual([
      '2026/11/30/10/w1-0000.jsonl',
      '2026/11/30/11/w1-0000.jsonl',
    ]);
  });

  it('fails as AuditUnavailable (retryable), naming the status, never the record', async () => {
    const fake = fakeContainer();
    const sink = new ImmutableAuditSink(
      () => fake.container,
      'w1',
      () => AT,
    );
    fake.state.failNext = storageError(503, 'ServerBusy');
    const failure = await sink.accept(record(1)).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(OffboardingError);
    expect(failure).toMatchObject({ code: 'AuditUnavailable', retryable: true });
    expect((failure as Error).message).toBe(
      'Could not append to the immutable audit log (HTTP 503 ServerBusy).',
    );
    expect((failure as Error).message).not.toContain(SECRET_LOOKING);
    // The next record (or the retried delivery) goes through.
    await sink.accept(record(1));
    expect(fake.blobs.get(blobName(AT, 'w1', 0))?.blocks).toHaveLength(1);
  });

  it('a create refused with 403 leaves the decision to the append', async () => {
    const fake = fakeContainer();
    const sink = new ImmutableAuditSink(
      () => fake.container,
      'w1',
      () => AT,
    );
    const name = blobName(AT, 'w1', 0);
    fake.blobs.set(name, { name, blocks: [] });
    const original = fake.container.getAppendBlobClient.bind(fake.container);
    (fake.container as unknown as { getAppendBlobClient: unknown }).getAppendBlobClient = (
      blob: string,
    ) => ({
      ...original(blob),
      createIfNotExists: () => Promise.reject(storageError(403, 'AuthorizationPermissionMismatch')),
    });
    await sink.accept(record(1));
    expect(fake.blobs.get(name)?.blocks).toHaveLength(1);
    fake.blobs.delete(name);
    await expect(sink.accept(record(2))).rejects.toMatchObject({ code: 'AuditUnavailable' });
  });

  it('bounds every call: an append that never answers ends in AuditUnavailable', async () => {
    jest.useFakeTimers();
    try {
      const fake = fakeContainer();
      const hung = {
        ...fake.container,
        getAppendBlobClient: (name: string) => ({
          ...fake.container.getAppendBlobClient(name),
          appendBlock: () => new Promise(() => undefined),
        }),
      } as unknown as ContainerClient;
      const sink = new ImmutableAuditSink(
        () => hung,
        'w1',
        () => AT,
      );
      const outcome = sink.accept(record(1)).catch((e: unknown) => e);
      await jest.advanceTimersByTimeAsync(Budgets.auditCallMs);
      expect(await outcome).toMatchObject({
        code: 'AuditUnavailable',
        retryable: true,
        message: expect.stringMatching(/no answer within 30 s/) as unknown,
      });
    } finally {
      jest.useRealTimers();
    }
  });

  it('warming up builds the container client once and sends no request', async () => {
    const fake = fakeContainer();
    let built = 0;
    const sink = new ImmutableAuditSink(
      () => {
        built += 1;
        return fake.container;
      },
      'w',
      () => AT,
    );
    await sink.warmUp();
    expect(built).toBe(1);
    expect(fake.calls).toEqual([]);
  });

  it('a warm-up that cannot build the client rejects (never throws)', async () => {
    const sink = new ImmutableAuditSink(() => {
      throw new Error('AUDIT_BLOB_ENDPOINT is required');
    });
    const warming = sink.warmUp();
    await expect(warming).rejects.toThrow(/AUDIT_BLOB_ENDPOINT/);
  });

  it('loads the Blob SDK when the first record arrives, not when the app starts', () => {
    const dist = join(__dirname, '..', '..', 'dist', 'shared', 'adapters', 'immutableAuditLog.js');
    const script = `
      const { createImmutableAuditSink } = require(${JSON.stringify(dist)});
      const loaded = () => Object.keys(require.cache).some((p) => p.includes('storage-blob'));
      const seen = [loaded()];
      const sink = createImmutableAuditSink(
        { immutableLog: { container: 'audit-log', connectionString: 'UseDevelopmentStorage=true' } },
        undefined,
      );
      seen.push(loaded());
      sink.accept({ identityKey: 'i', contentDigest: 'd', outcome: 'succeeded' }).catch(() => undefined);
      seen.push(loaded());
      console.log(JSON.stringify(seen));
      process.exit(0);
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual([false, false, true]);
  });

  it('or when the app warms up, before any record', () => {
    const dist = join(__dirname, '..', '..', 'dist', 'shared', 'adapters', 'immutableAuditLog.js');
    const script = `
      const { createImmutableAuditSink } = require(${JSON.stringify(dist)});
      const loaded = () => Object.keys(require.cache).some((p) => p.includes('storage-blob'));
      const sink = createImmutableAuditSink(
        { immutableLog: { container: 'audit-log', connectionString: 'UseDevelopmentStorage=true' } },
        undefined,
      );
      const before = loaded();
      sink.warmUp().then(() => {
        console.log(JSON.stringify([before, loaded()]));
        process.exit(0);
      });
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual([false, true]);
  });
});
