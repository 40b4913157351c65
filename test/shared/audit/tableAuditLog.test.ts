import { TableClient, TableServiceClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import { TableAuditLog, partitionKeyFor } from '../../../shared/audit/tableAuditLog';
import type { AuditRecord } from '../../../shared/ports';

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
    expect(await log.get('nope')).toBeUndefined();
    expect(await log.findByUser('alice@contoso.com')).toEqual([]);
    expect(await tableExists(tableName)).toBe(false);
  });

  it('creates the table on the first write and round-trips a record, whatever characters the id has', async () => {
    const { log, tableName } = freshLog();
    await log.put(record());
    expect(await tableExists(tableName)).toBe(true);
    expect(await log.get('evt/1?#x')).toEqual(
      record({ objectId: 'a11ce000-0000-4000-8000-000000000001' }),
    );
    expect(partitionKeyFor('evt/1?#x')).not.toMatch(/[/\\#?]/);
  });

  it('keeps one record per event id: a put replaces it', async () => {
    const { log } = freshLog();
    await log.put(
      record({ outcome: 'failed', retryable: true, errorCode: 'Throttled', attempts: 1 }),
    );
    await log.put(record({ attempts: 2 }));
    const found = await log.get('evt/1?#x');
    expect(found).toMatchObject({ outcome: 'succeeded', attempts: 2 });
    expect(found?.errorCode).toBeUndefined();
  });

  it('counts concurrent duplicates without losing any (optimistic concurrency)', async () => {
    const { log } = freshLog();
    await log.put(record());
    await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        log.recordDuplicate('evt/1?#x', `2026-11-27T11:00:0${i}Z`),
      ),
    );
    expect((await log.get('evt/1?#x'))?.duplicates).toBe(4);
  });

  it('finds a user’s records by the identifier given, the object id or the UPN, in any case', async () => {
    const { log } = freshLog();
    await log.put(record({ eventId: 'e1', user: 'Alice@Contoso.com' }));
    await log.put(
      record({
        eventId: 'e2',
        user: 'a11ce000-0000-4000-8000-000000000001',
        lastAttemptAt: '2026-11-27T12:00:00Z',
      }),
    );
    await log.put(
      record({
        eventId: 'e3',
        user: 'bob@contoso.com',
        objectId: 'b0b00000-0000-4000-8000-000000000002',
        userPrincipalName: 'bob@contoso.com',
      }),
    );
    for (const key of ['ALICE@contoso.com', 'A11CE000-0000-4000-8000-000000000001']) {
      expect((await log.findByUser(key)).map((r) => r.eventId)).toEqual(['e1', 'e2']);
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
    await expect(new TableAuditLog(table).get('x')).rejects.toMatchObject({
      code: 'AuditUnavailable',
      retryable: true,
    });
  });
});
