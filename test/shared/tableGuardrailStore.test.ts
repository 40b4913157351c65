/**
 * The guardrail's records in Table Storage (shared/adapters/tableGuardrailStore.ts) on Azurite:
 * conditional writes that lose races instead of overwriting, instances sharing one count without
 * admitting past the limit, and a record that does not parse failing closed.
 */
import { TableClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import {
  GUARDRAIL_PARTITION,
  TableGuardrailStore,
} from '../../shared/adapters/tableGuardrailStore';
import { ErrorCodes } from '../../shared/core/errors';
import {
  SharedGuardrail,
  countInWindow,
  decideAdmission,
  emptyState,
  type Admission,
  type GuardrailLimits,
} from '../../shared/core/guardrail';

const T0 = Date.parse('2026-11-30T09:00:00.000Z');

function azuriteTable(name: string): TableClient {
  const connectionString = process.env.TEST_AZURITE_CONNECTION_STRING;
  if (!connectionString) throw new Error('TEST_AZURITE_CONNECTION_STRING is not set');
  return TableClient.fromConnectionString(connectionString, name, {
    allowInsecureConnection: true,
  });
}

function freshTableName(): string {
  return `Guardrail${randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

const LIMITS: GuardrailLimits = {
  employeeLeaving: { maxPerWindow: 25, windowMinutes: 60 },
  mfaEnabled: { maxPerWindow: 1000, windowMinutes: 60 },
  employeeReinstated: { maxPerWindow: 25, windowMinutes: 60 },
};

describe('TableGuardrailStore on Azurite', () => {
  it('creates the table on the first write, and loses a race (409, 412) instead of overwriting', async () => {
    const name = freshTableName();
    const store = new TableGuardrailStore(azuriteTable(name));
    expect(await store.read('employeeLeaving')).toBeUndefined();

    const state = { ...emptyState(), buckets: { [String(T0)]: 3 }, trips: 1 };
    const first = await store.write('employeeLeaving', state, undefined);
    expect(first).toEqual(expect.any(String));
    // Another instance creating it too loses; so does a writer holding an older ETag.
    const other = new TableGuardrailStore(azuriteTable(name));
    expect(await other.write('employeeLeaving', emptyState(), undefined)).toBeUndefined();
    const next = { ...state, buckets: { [String(T0)]: 4 } };
    const second = await store.write('employeeLeaving', next, first);
    expect(second).toEqual(expect.any(String));
    expect(await other.write('employeeLeaving', emptyState(), first)).toBeUndefined();

    expect(await other.read('employeeLeaving')).toEqual({
      state: next,
      etag: second,
      // The service's clock, from its Date header (the guardrail's check on instances' clocks).
      storeTime: expect.any(Number) as number,
    });
    // One entity per route, in the guardrail partition.
    expect(await store.read('mfaEnabled')).toBeUndefined();
    const entity = await azuriteTable(name).getEntity(GUARDRAIL_PARTITION, 'employeeLeaving');
    expect(typeof entity.state).toBe('string');
  });

  it('40 concurrent admissions from 4 instances against a limit of 25 admit exactly 25', async () => {
    const name = freshTableName();
    const instances = Array.from(
      { length: 4 },
      () =>
        new SharedGuardrail(
          new TableGuardrailStore(azuriteTable(name)),
          LIMITS,
          () => new Date(T0),
        ),
    );
    // Under this much contention an admission may give up (a retryable AuditUnavailable after
    // its bounded lost races); the queue delivers such an event again, and so does this test.
    const retryable: unknown[] = [];
    const admit = async (guardrail: SharedGuardrail): Promise<Admission> => {
      for (;;) {
        try {
          return await guardrail.admit({ route: 'employeeLeaving' });
        } catch (error) {
          expect(error).toMatchObject({ code: ErrorCodes.AuditUnavailable, retryable: true });
          retryable.push(error);
          if (retryable.length > 40) throw error;
        }
      }
    };
    const admissions = await Promise.all(
      Array.from({ length: 40 }, (_, i) => admit(instances[i % 4] as SharedGuardrail)),
    );

    expect(admissions.filter((a) => a.admitted)).toHaveLength(25);
    expect(admissions.filter((a) => !a.admitted && a.trippedNow)).toHaveLength(1);
    expect(admissions.filter((a) => !a.admitted && !a.trippedNow)).toHaveLength(14);
    const stored = await new TableGuardrailStore(azuriteTable(name)).read('employeeLeaving');
    expect(countInWindow(stored?.state ?? emptyState(), LIMITS.employeeLeaving, T0)).toBe(25);
    expect(stored?.state.trips).toBe(1);
    expect(stored?.state.trip).toMatchObject({ count: 25, limit: 25 });
  }, 60_000);

  it('an instance whose clock runs 45 minutes ahead prunes none of the others: the count errs high', async () => {
    const name = freshTableName();
    const store = new TableGuardrailStore(azuriteTable(name));
    const limit = { maxPerWindow: 100, windowMinutes: 60 };
    const limits = { ...LIMITS, employeeLeaving: limit };
    const now = Date.now();
    // 50 departures admitted 20 to 40 minutes ago by instances with right clocks.
    const right = Array.from({ length: 50 }, (_, i) => now - 40 * 60_000 + i * 24_000);
    let state = emptyState();
    for (const at of right)
      state = decideAdmission(state, { route: 'employeeLeaving' }, limit, at).next ?? state;
    expect(await store.write('employeeLeaving', state, undefined)).toBeDefined();
    const before = await store.read('employeeLeaving');
    expect(countInWindow(before?.state ?? emptyState(), limit, now)).toBe(50);

    const ahead = new SharedGuardrail(store, limits, () => new Date(Date.now() + 45 * 60_000));
    expect((await ahead.admit({ route: 'employeeLeaving' })).admitted).toBe(true);
    const behind = new SharedGuardrail(store, limits, () => new Date(Date.now() - 45 * 60_000));
    expect((await behind.admit({ route: 'employeeLeaving' })).admitted).toBe(true);

    const after = await store.read('employeeLeaving');
    expect(countInWindow(after?.state ?? emptyState(), limit, Date.now())).toBe(52);
    // The one running behind was counted where the store's clock says, not 45 minutes early.
    expect(countInWindow(after?.state ?? emptyState(), limit, Date.now() + 16 * 60_000)).toBe(52);
  }, 60_000);

  describe("operators' decisions about held events", () => {
    const key = { identityKey: 'identity-1', contentDigest: 'digest-1' };
    const release = {
      kind: 'release' as const,
      approvalId: 'approval-1',
      by: 'ops@contoso.com',
      reason: 'HR confirmed the list',
      at: '2026-11-30T10:00:00.000Z',
    };

    it('none until one is made (even before the table exists); then read back as made', async () => {
      const store = new TableGuardrailStore(azuriteTable(freshTableName()));
      expect(await store.decisionFor('employeeLeaving', key)).toBeUndefined();
      expect(await store.decide('employeeLeaving', key, release)).toEqual(release);
      expect(await store.decisionFor('employeeLeaving', key)).toEqual(release);
      // Per route and per event.
      expect(await store.decisionFor('mfaEnabled', key)).toBeUndefined();
      expect(
        await store.decisionFor('employeeLeaving', { ...key, contentDigest: 'digest-2' }),
      ).toBeUndefined();
    });

    it('the first decision stands, also when two operators decide at once', async () => {
      const name = freshTableName();
      const one = new TableGuardrailStore(azuriteTable(name));
      const other = new TableGuardrailStore(azuriteTable(name));
      const discard = { ...release, kind: 'discard' as const, approvalId: 'approval-2' };
      const [a, b] = await Promise.all([
        one.decide('employeeLeaving', key, release),
        other.decide('employeeLeaving', key, discard),
      ]);
      expect(a).toEqual(b);
      expect(await one.decisionFor('employeeLeaving', key)).toEqual(a);
      // A later decision does not replace it.
      const later = { ...release, approvalId: 'approval-3' };
      expect(await other.decide('employeeLeaving', key, later)).toEqual(a);
    });

    it('a decision that does not parse fails closed', async () => {
      const name = freshTableName();
      const table = azuriteTable(name);
      await table.createTable();
      await table.createEntity({
        partitionKey: 'decision-employeeLeaving',
        rowKey: `${key.identityKey}.${key.contentDigest}`,
        kind: 'maybe',
        approvalId: 'x',
        by: 'x',
        reason: 'x',
        at: 'x',
      });
      await expect(
        new TableGuardrailStore(table).decisionFor('employeeLeaving', key),
      ).rejects.toMatchObject({ code: ErrorCodes.AuditUnavailable, retryable: true });
    });
  });

  describe('a corrupted record fails closed (retryable AuditUnavailable, never an empty guardrail)', () => {
    const corruptions: Array<[string, Record<string, unknown>]> = [
      ['state that is not JSON', { state: '{"buckets": {' }],
      ['state that is JSON null', { state: 'null' }],
      ['state without buckets', { state: JSON.stringify({ trips: 2, approvals: {} }) }],
      ['no state at all', { other: 'x' }],
    ];

    it.each(corruptions)('%s', async (_, properties) => {
      const name = freshTableName();
      const table = azuriteTable(name);
      await table.createTable();
      await table.createEntity({
        partitionKey: GUARDRAIL_PARTITION,
        rowKey: 'employeeLeaving',
        ...properties,
      });
      const store = new TableGuardrailStore(table);
      await expect(store.read('employeeLeaving')).rejects.toMatchObject({
        code: ErrorCodes.AuditUnavailable,
        retryable: true,
      });
      const guardrail = new SharedGuardrail(store, LIMITS, () => new Date(T0));
      await expect(guardrail.admit({ route: 'employeeLeaving' })).rejects.toMatchObject({
        code: ErrorCodes.AuditUnavailable,
        retryable: true,
      });
      // Left as found, for someone to look at.
      const entity = await table.getEntity(GUARDRAIL_PARTITION, 'employeeLeaving');
      expect(entity).toMatchObject(properties);
    });

    // Found by this test: a count that is not a number summed to NaN and admitted everything.
    it('counts that are not numbers', async () => {
      const name = freshTableName();
      const table = azuriteTable(name);
      await table.createTable();
      const state = { buckets: { [String(T0)]: 'many' }, trips: 0, approvals: {}, decisions: [] };
      await table.createEntity({
        partitionKey: GUARDRAIL_PARTITION,
        rowKey: 'employeeLeaving',
        state: JSON.stringify(state),
      });
      const guardrail = new SharedGuardrail(
        new TableGuardrailStore(table),
        LIMITS,
        () => new Date(T0),
      );
      let admitted = 0;
      for (let i = 0; i < 30; i += 1) {
        const admission = await guardrail
          .admit({ route: 'employeeLeaving' })
          .catch(() => undefined);
        if (admission?.admitted === true) admitted += 1;
      }
      expect(admitted).toBeLessThanOrEqual(LIMITS.employeeLeaving.maxPerWindow);
    });
  });
});
