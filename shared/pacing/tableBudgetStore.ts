import { RestError, type TableClient } from '@azure/data-tables';
import {
  BudgetRateFields,
  type BudgetState,
  type BudgetStore,
  type StoredBudget,
} from './budgetStore';

const PARTITION_KEY = 'graph-identity-writes';
const ROW_KEY = 'budget';
/** One storage call may not hold a reservation (and the event) for longer than this. */
const CALL_TIMEOUT_MS = 3_000;

type BudgetEntity = BudgetState & { partitionKey: string; rowKey: string };

function isTableNotFound(error: unknown): boolean {
  if (!(error instanceof RestError) || error.statusCode !== 404) return false;
  const details = error.details as { errorCode?: string } | undefined;
  return /TableNotFound/i.test(error.code ?? details?.errorCode ?? error.message);
}

/**
 * The shared budget as one entity in Table Storage (the audit storage account), updated with
 * optimistic concurrency: a write carries the ETag it read and loses with 412 when another
 * instance wrote first. Decisions are on status codes (Azurite leaves RestError.code unset).
 */
export class TableBudgetStore implements BudgetStore {
  constructor(private readonly table: TableClient) {}

  async read(): Promise<StoredBudget | undefined> {
    try {
      const entity = await this.table.getEntity<BudgetEntity>(PARTITION_KEY, ROW_KEY, {
        abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
      const tat = Number(entity.tat);
      const budget: StoredBudget = { tat: Number.isFinite(tat) ? tat : 0, etag: entity.etag };
      // Absent in a budget written before the rate was adaptive: the configured rate applies.
      for (const field of BudgetRateFields) {
        const value = Number(entity[field] ?? NaN);
        if (Number.isFinite(value)) budget[field] = value;
      }
      return budget;
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  async write(
    budget: BudgetState,
    etag: string | undefined,
    mayCreateTable = true,
  ): Promise<string | undefined> {
    try {
      return await this.attempt(budget, etag);
    } catch (error) {
      // Infra may not have created the table (Azurite starts empty): create it once, then retry.
      if (mayCreateTable && isTableNotFound(error)) {
        await this.createTable();
        return this.write(budget, etag, false);
      }
      // 409: created by someone else first; 412: changed since read; 404: removed since read.
      if (error instanceof RestError && [404, 409, 412].includes(error.statusCode ?? 0)) {
        return undefined;
      }
      throw error;
    }
  }

  private async attempt(budget: BudgetState, etag: string | undefined): Promise<string> {
    const entity: BudgetEntity = { partitionKey: PARTITION_KEY, rowKey: ROW_KEY, tat: budget.tat };
    for (const field of BudgetRateFields) {
      const value = budget[field];
      if (value !== undefined) entity[field] = value;
    }
    const abortSignal = AbortSignal.timeout(CALL_TIMEOUT_MS);
    const response =
      etag === undefined
        ? await this.table.createEntity(entity, { abortSignal })
        : await this.table.updateEntity(entity, 'Replace', { etag, abortSignal });
    if (!response.etag) throw new Error('Table Storage answered a write without an ETag');
    return response.etag;
  }

  private async createTable(): Promise<void> {
    try {
      await this.table.createTable({ abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
    } catch (error) {
      // Created by another instance in between: fine.
      if (!(error instanceof RestError && error.statusCode === 409)) throw error;
    }
  }
}
