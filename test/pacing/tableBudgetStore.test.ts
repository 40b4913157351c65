import { TableClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import type { BudgetParams } from '../../shared/pacing/budget';
import { SharedWritePacer, TableBudgetStore, type Lane } from '../../shared/pacing/index';
import { worstOverGrant, type StartedWrites } from './support';

function azuriteTable(name: string): TableClient {
  const connectionString = process.env.TEST_AZURITE_CONNECTION_STRING;
  if (!connectionString) throw new Error('TEST_AZURITE_CONNECTION_STRING is not set');
  return TableClient.fromConnectionString(connectionString, name, {
    allowInsecureConnection: true,
  });
}

describe('TableBudgetStore on Azurite', () => {
  it('creates the table and the budget, and loses a race with 412 instead of overwriting', async () => {
    const name = `Pacing${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const store = new TableBudgetStore(azuriteTable(name));
    expect(await store.read()).toBeUndefined();
    const first = await store.write({ tat: 1_000 }, undefined);
    expect(first).toEqual(expect.any(String));
    // A second creator loses (409), a writer with a stale ETag loses (412).
    expect(
      await new TableBudgetStore(azuriteTable(name)).write({ tat: 5 }, undefined),
    ).toBeUndefined();
    const second = await store.write(
      { tat: 2_000, rate: 12.5, loweredAt: 1_500, pausedUntil: 1_800 },
      first,
    );
    expect(second).toEqual(expect.any(String));
    expect(await store.write({ tat: 3_000 }, first)).toBeUndefined();
    // The rate Graph gives travels with the bucket.
    expect(await store.read()).toEqual({
      tat: 2_000,
      rate: 12.5,
      loweredAt: 1_500,
      pausedUntil: 1_800,
      etag: second,
    });
  });

  it('lets concurrent instances share one budget without over-granting', async () => {
    const name = `Pacing${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const params: BudgetParams = { ratePerSecond: 20, capacity: 10, departureReserve: 4 };
    const starts: StartedWrites[] = [];
    // Four instances, each with its own Table client; sleeping records the slot and waits not.
    const instances = Array.from(
      { length: 4 },
      () =>
        new SharedWritePacer({
          params,
          store: new TableBudgetStore(azuriteTable(name)),
          maxWaitMs: 600_000,
          waveMaxWaitMs: 600_000,
          onGranted: ({ writes, startAt }) => starts.push({ at: startAt, writes }),
          sleep: () => Promise.resolve(),
        }),
    );
    const lanes: Lane[] = ['wave', 'wave', 'departure'];
    await Promise.all(
      instances.flatMap((pacer, i) =>
        Array.from({ length: 30 }, (_, j) =>
          pacer.reserve(lanes[(i + j) % 3] ?? 'wave', 1 + (j % 2)),
        ),
      ),
    );
    const stats = instances.map((p) => p.stats());
    expect(stats.reduce((sum, s) => sum + s.granted, 0)).toBe(120);
    expect(stats.reduce((sum, s) => sum + s.storeFailures, 0)).toBe(0);
    // 180 writes at 20/s with a bucket of 10: at least (180 - 10) / 20 = 8.5 s of slots.
    const total = starts.reduce((sum, s) => sum + s.writes, 0);
    expect(total).toBe(180);
    const span = Math.max(...starts.map((s) => s.at)) - Math.min(...starts.map((s) => s.at));
    expect(span).toBeGreaterThanOrEqual(8_500 - 50);
    expect(worstOverGrant(starts, params)).toBeLessThanOrEqual(1e-6);
    // The instances really raced (each batch of each lane is one conditional write).
    expect(stats.reduce((sum, s) => sum + s.storeConflicts, 0)).toBeGreaterThan(0);
  });
});
