import { RestError, odata, type TableClient } from '@azure/data-tables';
import { Budgets, withDeadline } from './deadline';
import { ErrorCodes, OffboardingError } from '../core/errors';
import type {
  EventDecision,
  GuardrailName,
  GuardrailState,
  GuardrailStore,
  StoredGuardrail,
} from '../core/guardrail';
import type { RecordKey } from '../core/ports';

/** The guardrail table: one entity per route in this partition... */
export const GUARDRAIL_PARTITION = 'guardrail';
/** ...and operators' decisions about held events in one partition per route. */
const decisionPartition = (route: GuardrailName) => `decision-${route}`;
const decisionRow = (key: RecordKey) => `${key.identityKey}.${key.contentDigest}`;

interface DecisionEntity {
  partitionKey: string;
  rowKey: string;
  kind: string;
  approvalId: string;
  by: string;
  reason: string;
  at: string;
  trip?: number;
}

interface GuardrailEntity {
  partitionKey: string;
  rowKey: string;
  /** GuardrailState as JSON (Table Storage has no objects). */
  state: string;
}

/**
 * The guardrail table (GUARDRAIL_TABLE_NAME): operators write it (decisions, wave approvals); the
 * audit table they only read. Each route's guardrail state is one entity, written with optimistic concurrency: a write
 * carries the ETag it read and loses with 412 (or 409 on a first create) when another instance
 * wrote first. A store that cannot be reached is AuditUnavailable (retryable): the guardrail fails
 * closed. Decisions are on status codes (Azurite leaves RestError.code unset).
 */
export class TableGuardrailStore implements GuardrailStore {
  constructor(private readonly table: TableClient) {}

  async read(route: GuardrailName): Promise<StoredGuardrail | undefined> {
    try {
      let storeTime: number | undefined;
      const entity = await this.call((abortSignal) =>
        this.table.getEntity<GuardrailEntity>(GUARDRAIL_PARTITION, route, {
          abortSignal,
          // The service's clock (the Date header): the guardrail never lets an instance whose
          // clock runs ahead of it prune the window (guardrail.ts, clockOf).
          onResponse: (response) => {
            const date = Date.parse(response.headers.get('date') ?? '');
            if (Number.isFinite(date)) storeTime = date;
          },
        }),
      );
      return {
        state: parseState(entity.state),
        etag: entity.etag,
        ...(storeTime === undefined ? {} : { storeTime }),
      };
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw unavailable(error);
    }
  }

  async write(
    route: GuardrailName,
    state: GuardrailState,
    etag: string | undefined,
  ): Promise<string | undefined> {
    const entity: GuardrailEntity = {
      partitionKey: GUARDRAIL_PARTITION,
      rowKey: route,
      state: JSON.stringify(state),
    };
    try {
      const response = await this.call((abortSignal) =>
        etag === undefined
          ? this.table.createEntity(entity, { abortSignal })
          : this.table.updateEntity(entity, 'Replace', { etag, abortSignal }),
      );
      if (!response.etag) throw new Error('Table Storage answered a write without an ETag');
      return response.etag;
    } catch (error) {
      if (etag === undefined && isTableNotFound(error)) {
        await this.call((abortSignal) => this.table.createTable({ abortSignal })).catch(
          (created: unknown) => {
            throw unavailable(created);
          },
        );
        return this.write(route, state, etag);
      }
      // 409: created by another instance first; 412: changed since read; 404: removed since read.
      if (error instanceof RestError && [404, 409, 412].includes(error.statusCode ?? 0))
        return undefined;
      throw unavailable(error);
    }
  }

  async decisionFor(route: GuardrailName, key: RecordKey): Promise<EventDecision | undefined> {
    try {
      const entity = await this.call((abortSignal) =>
        this.table.getEntity<DecisionEntity>(decisionPartition(route), decisionRow(key), {
          abortSignal,
        }),
      );
      return parseDecision(entity);
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw unavailable(error);
    }
  }

  async decidedInTrip(route: GuardrailName, trip: number): Promise<number> {
    try {
      return await this.call(async (abortSignal) => {
        let count = 0;
        const pages = this.table
          .listEntities<DecisionEntity>({
            queryOptions: {
              filter: odata`PartitionKey eq ${decisionPartition(route)} and trip eq ${trip}`,
              select: ['rowKey'],
            },
            abortSignal,
          })
          .byPage({ maxPageSize: 1000 });
        for await (const page of pages) count += page.length;
        return count;
      });
    } catch (error) {
      if (isTableNotFound(error)) return 0;
      throw unavailable(error);
    }
  }

  async decide(
    route: GuardrailName,
    key: RecordKey,
    decision: EventDecision,
    mayCreateTable = true,
  ): Promise<EventDecision> {
    const entity: DecisionEntity = {
      partitionKey: decisionPartition(route),
      rowKey: decisionRow(key),
      ...decision,
    };
    try {
      await this.call((abortSignal) => this.table.createEntity(entity, { abortSignal }));
      return decision;
    } catch (error) {
      if (mayCreateTable && isTableNotFound(error)) {
        await this.call((abortSignal) => this.table.createTable({ abortSignal })).catch(
          (created: unknown) => {
            throw unavailable(created);
          },
        );
        return this.decide(route, key, decision, false);
      }
      // 409: decided before (a re-run, or another operator): the first decision stands.
      if (error instanceof RestError && error.statusCode === 409) {
        const standing = await this.decisionFor(route, key);
        if (standing !== undefined) return standing;
      }
      throw unavailable(error);
    }
  }

  private call<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withDeadline(
      Budgets.auditCallMs,
      () =>
        unavailable(
          new Error(`the audit store did not answer within ${Budgets.auditCallMs / 1000} s`),
        ),
      work,
    );
  }
}

function isTableNotFound(error: unknown): boolean {
  if (!(error instanceof RestError) || error.statusCode !== 404) return false;
  const details = error.details as { errorCode?: string } | undefined;
  return /TableNotFound/i.test(error.code ?? details?.errorCode ?? error.message);
}

function parseDecision(entity: DecisionEntity): EventDecision {
  if (entity.kind !== 'release' && entity.kind !== 'discard')
    throw new Error('A guardrail decision in the table is not in the expected format.');
  return {
    kind: entity.kind,
    approvalId: String(entity.approvalId),
    by: String(entity.by),
    reason: String(entity.reason),
    at: String(entity.at),
    ...(typeof entity.trip === 'number' ? { trip: entity.trip } : {}),
  };
}

/** A stored state that does not parse is a fault to see, not an empty guardrail to run past. */
function parseState(text: string): GuardrailState {
  const parsed = JSON.parse(text) as Partial<GuardrailState>;
  const isCount = (value: unknown) =>
    typeof value === 'number' && Number.isInteger(value) && value >= 0;
  // A count that is not a number would sum to NaN and admit everything: refuse the record instead.
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof parsed.buckets !== 'object' ||
    parsed.buckets === null ||
    !Object.entries(parsed.buckets).every(
      ([start, count]) => /^\d+$/.test(start) && isCount(count),
    ) ||
    (parsed.trips !== undefined && !isCount(parsed.trips))
  )
    throw new Error('The guardrail record in its table is not in the expected format.');
  return {
    buckets: parsed.buckets,
    trips: typeof parsed.trips === 'number' ? parsed.trips : 0,
    approvals: parsed.approvals ?? {},
    decisions: parsed.decisions ?? [],
    ...(parsed.trip === undefined ? {} : { trip: parsed.trip }),
  };
}

function unavailable(error: unknown): OffboardingError {
  if (error instanceof OffboardingError) return error;
  const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
  return new OffboardingError(
    ErrorCodes.AuditUnavailable,
    `Could not use the guardrail table: ${reason}.`,
    { retryable: true, cause: error },
  );
}
