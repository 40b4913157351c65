import { TableClient, TableServiceClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import { TableAuditLog } from '../../../shared/adapters/tableAuditLog';
import { updateRecord } from '../../../shared/core/auditRecords';
import { createServer, type Socket } from 'node:net';
import type { AuditRecord } from '../../../shared/core/ports';

const connectionString = () => process.env.TEST_AZURITE_CONNECTION_STRING!;

function freshLog(): { log: TableAuditLog; tableName: string } {
  const tableName = `Audit${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const table = TableClient.fromConnectionString(connectionString(), tableName, {
    allowInsecureConnection: true,
  });
  return { log: new TableAuditLog(table), tableName };
}

async function tableExists(name: string): Promise<boolean> {
  const service = TableServiceClient.fromConnectionString(connectionString(), {
    allowInsecureConnection: true,
  });
  for await (const table of service.listTables()) if (table.name === name) return true;
  return false;
}

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    identityKey: 'identity-1',
    contentDigest: 'digest-1',
    eventId: 'evt/1?#x',
    eventType: 'employee.leaving',
    source: '/hr',
    user: 'Alice@Contoso.com',
    objectId: 'A11CE000-0000-4000-8000-000000000001',
    userPrincipalName: 'alice@contoso.com',
    requestedActions: ['disableAccount', 'revokeSignInSessions'],
    actions: [{ action: 'disableAccount', status: 'succeeded', requestId: 'r1' }],
    verification: { verified: true, signInSessionsValidFrom: '2026-11-27T10:00:00Z' },
    graphRequestIds: ['r1', 'r2'],
    outcome: 'succeeded',
    notes: ['a note'],
    dryRun: false,
    attempts: 1,
    duplicates: 0,
    firstAttemptAt: '2026-11-27T10:00:00.000Z',
    lastAttemptAt: '2026-11-27T10:00:01.000Z',
    ...overrides,
  };
}

describe('TableAuditLog on Azurite', () => {
  it('reads nothing from a missing table without creating it (readers cannot create tables)', async () => {
    const { log, tableName } = freshLog();
    expect(await log.read({ identityKey: 'nope', contentDigest: 'nope' })).toBeUndefined();
    expect(await log.findByUser('alice@contoso.com')).toEqual([]);
    expect(await log.findByEventId('nope')).toEqual([]);
    expect(await tableExists(tableName)).toBe(false);
  });

  it('creates the table on the first write and round-trips a record, whatever characters the id has', async () => {
    const { log, tableName } = freshLog();
    expect(await log.create(record())).toBeDefined();
    expect(await tableExists(tableName)).toBe(true);
    expect((await log.read(record()))?.record).toEqual(
      record({ objectId: 'a11ce000-0000-4000-8000-000000000001' }),
    );
    expect(await log.findByEventId('evt/1?#x')).toHaveLength(1);
  });

  it('creates only if absent: a second create of the same key is refused, not overwritten', async () => {
    const { log } = freshLog();
    expect(await log.create(record({ outcome: 'scheduled' }))).toBeDefined();
    expect(await log.create(record({ outcome: 'failed' }))).toBeUndefined();
    expect((await log.read(record()))?.record.outcome).toBe('scheduled');
  });

  it('replaces only at the version read: a stale ETag is refused', async () => {
    const { log } = freshLog();
    await log.create(record({ outcome: 'failed', retryable: true, attempts: 1 }));
    const first = await log.read(record());
    const second = await log.read(record());
    expect(await log.replace(record({ attempts: 2 }), first!.etag)).toBeDefined();
    expect(await log.replace(record({ outcome: 'cancelled' }), second!.etag)).toBeUndefined();
    const found = (await log.read(record()))?.record;
    expect(found).toMatchObject({ outcome: 'succeeded', attempts: 2 });
    expect(found?.errorCode).toBeUndefined();
  });

  it('keeps records of one identity apart by content digest, and lists them together', async () => {
    const { log } = freshLog();
    await log.create(record({ contentDigest: 'digest-a', user: 'ann@contoso.com' }));
    await log.create(record({ contentDigest: 'digest-b', user: 'ben@contoso.com' }));
    const listed = await log.listIdentity('identity-1');
    expect(listed.map((r) => r.user).sort()).toEqual(['ann@contoso.com', 'ben@contoso.com']);
  });

  it('counts concurrent duplicates without losing any (conditional writes, re-read on conflict)', async () => {
    const { log } = freshLog();
    await log.create(record());
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        updateRecord(log, record(), (current) => ({
          next: { ...current!, duplicates: current!.duplicates + 1, lastDuplicateAt: `t${i}` },
          verdict: undefined,
        })),
      ),
    );
    expect((await log.read(record()))?.record.duplicates).toBe(8);
  });

  it('finds a user’s records by the identifier given, the object id or the UPN, in any case', async () => {
    const { log } = freshLog();
    await log.create(record({ contentDigest: 'd1', eventId: 'e1', user: 'Alice@Contoso.com' }));
    await log.create(
      record({
        contentDigest: 'd2',
        eventId: 'e2',
        user: 'a11ce000-0000-4000-8000-000000000001',
        lastAttemptAt: '2026-11-27T12:00:00Z',
      }),
    );
    await log.create(
      record({
        contentDigest: 'd3',
        eventId: 'e3',
        user: 'bob@contoso.com',
        objectId: 'b0b00000-0000-4000-8000-000000000002',
        userPrincipalName: 'bob@contoso.com',
      }),
    );
    for (const key of ['ALICE@contoso.com', 'A11CE000-0000-4000-8000-000000000001']) {
      expect((await log.findByUser(key)).map((s) => s.record.eventId)).toEqual(['e1', 'e2']);
    }
  });

  it('reports an unreachable store as retryable AuditUnavailable', async () => {
    const table = TableClient.fromConnectionString(
      connectionString().replace(
        /TableEndpoint=http:\/\/127\.0\.0\.1:\d+/,
        'TableEndpoint=http://127.0.0.1:9',
      ),
      'AuditDown',
      { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } },
    );
    await expect(new TableAuditLog(table).read(record())).rejects.toMatchObject({
      code: 'AuditUnavailable',
      retryable: true,
    });
  });

  it('ends the wait on a store that accepts connections and never answers', async () => {
    // A listener that takes the connection and says nothing: without a bound this hangs forever.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const table = TableClient.fromConnectionString(
      connectionString().replace(
        /TableEndpoint=http:\/\/127\.0\.0\.1:\d+/,
        `TableEndpoint=http://127.0.0.1:${port}`,
      ),
      'AuditHung',
      { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } },
    );
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      const failure = new TableAuditLog(table).read(record()).catch((error: unknown) => error);
      await jest.advanceTimersByTimeAsync(30_000);
      expect(await failure).toMatchObject({ code: 'AuditUnavailable', retryable: true });
      expect(String(await failure)).toMatch(/did not answer within 30 s/);
    } finally {
      jest.useRealTimers();
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});
