/**
 * The shared budget: the bucket (`tat`, epoch milliseconds) and the rate Graph gives
 * (adaptiveRate.ts). A budget written before the rate was adaptive has only `tat`.
 */
export interface BudgetState {
  tat: number;
  /** The rate `tat` was last expressed at: the writes booked ahead are `(tat - now) * tatRate`. */
  tatRate?: number;
  /** Writes per second as last lowered (or held); absent: the configured maximum. */
  rate?: number;
  /** When the rate was last lowered (epoch ms); it rises again from then. */
  loweredAt?: number;
  /** Graph's usage (x-ms-throttle-limit-percentage) that the last lowering answered. */
  usage?: number;
  /** When Graph last reported its usage at the mark (to the second): the rate holds meanwhile. */
  heardAt?: number;
  /** Graph's Retry-After (epoch ms): no write starts before it. */
  pausedUntil?: number;
}

/** Every optional field of the budget, as stored beside `tat` (one list for every store). */
export const BudgetRateFields = [
  'tatRate',
  'rate',
  'loweredAt',
  'usage',
  'heardAt',
  'pausedUntil',
] as const satisfies ReadonlyArray<keyof BudgetState>;

/** The budget without its ETag, only the fields it has. */
export function budgetState(stored: BudgetState): BudgetState {
  const state: BudgetState = { tat: stored.tat };
  for (const field of BudgetRateFields) {
    const value = stored[field];
    if (value !== undefined) state[field] = value;
  }
  return state;
}

export function sameBudget(a: BudgetState, b: BudgetState): boolean {
  return a.tat === b.tat && BudgetRateFields.every((field) => a[field] === b[field]);
}

/**
 * Where the shared budget lives, with an ETag. Every instance reads it, computes, and writes it
 * back only if nobody else wrote in between.
 */
export type StoredBudget = BudgetState & { etag: string };

export interface BudgetStore {
  /** The stored budget; undefined when none was written yet. */
  read(): Promise<StoredBudget | undefined>;
  /**
   * Writes `budget` if the stored ETag is still `etag` (or, with `etag` undefined, if nothing is
   * stored yet). Resolves to the new ETag, or undefined when another writer won the race; rejects
   * when the store fails.
   */
  write(budget: BudgetState, etag: string | undefined): Promise<string | undefined>;
}

/**
 * In-process store with the same conditional-write contract: the budget of one instance (static
 * share), and the unit tests of the bucket logic.
 */
export class MemoryBudgetStore implements BudgetStore {
  private stored: StoredBudget | undefined;
  private version = 0;
  /** Conditional writes that lost a race, for tests and the benchmark. */
  conflicts = 0;
  writes = 0;

  read(): Promise<StoredBudget | undefined> {
    return Promise.resolve(this.stored && { ...this.stored });
  }

  write(budget: BudgetState, etag: string | undefined): Promise<string | undefined> {
    if (etag !== this.stored?.etag) {
      this.conflicts += 1;
      return Promise.resolve(undefined);
    }
    this.version += 1;
    this.writes += 1;
    this.stored = { ...budget, etag: `v${this.version}` };
    return Promise.resolve(this.stored.etag);
  }
}
