import { odata, RestError, TableClient, type TableEntityResult } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { AuditConfig } from '../app/config';
import { Budgets, withDeadline } from './deadline';
import { ErrorCodes, OffboardingError } from '../core/errors';
import type {
  AuditLog,
  AuditRecord,
  Outcome,
  RecordKey,
  StoredRecord,
  StoredTimeline,
  TimelineStore,
} from '../core/ports';
import type { Timeline } from '../core/timeline';

/** Properties stored as JSON text (Table Storage has no arrays or objects). */
const JSON_FIELDS = [
  'requestedActions',
  'actions',
  'verification',
  'accessCutoff',
  'graphRequestIds',
  'notes',
  'guardrail',
  'supersededBy',
  'forcedBy',
  'signInWatch',
] as const satisfies readonly ObjectFieldOf<AuditRecord>[];
/** The record's fields that hold objects or arrays: a table property holds a scalar only. */
type ObjectFieldOf<T> = {
  [K in keyof T]-?: NonNullable<T[K]> extends object ? K : never;
}[keyof T];
// Fails to compile when an object-valued field is added to AuditRecord and not to JSON_FIELDS.
const everyObjectFieldEncoded: [
  Exclude<ObjectFieldOf<AuditRecord>, (typeof JSON_FIELDS)[number]>,
] extends [never]
  ? true
  : never = true;
void everyObjectFieldEncoded;

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

export function createTableClient(
  config: AuditConfig,
  credential: TokenCredential | undefined,
): TableClient {
  // Few SDK retries: each operation as a whole is bounded by withDeadline below.
  const retryOptions = { maxRetries: 2 };
  if (config.connectionString !== undefined) {
    return TableClient.fromConnectionString(config.connectionString, config.tableName, {
      // Azurite speaks plain http on loopback; Azure endpoints are https regardless.
      allowInsecureConnection: /UseDevelopmentStorage=true|http:\/\/(127\.0\.0\.1|localhost)/i.test(
        config.connectionString,
      ),
      retryOptions,
    });
  }
  if (config.endpoint === undefined || credential === undefined) {
    throw new OffboardingError(
      ErrorCodes.InvalidConfiguration,
      'Setting AUDIT_TABLE_ENDPOINT is required.',
      { retryable: false },
    );
  }
  return new TableClient(config.endpoint, config.tableName, credential, { retryOptions });
}

function statusOf(error: unknown): number | undefined {
  return error instanceof RestError ? error.statusCode : undefined;
}

function isTableNotFound(error: unknown): boolean {
  return (
    error instanceof RestError &&
    error.statusCode === 404 &&
    /TableNotFound/i.test(errorCodeOf(error))
  );
}

function errorCodeOf(error: RestError): string {
  const details = error.details as
    { errorCode?: string; odataError?: { code?: string } } | undefined;
  return error.code ?? details?.errorCode ?? details?.odataError?.code ?? error.message;
}

/**
 * The audit log in Azure Table Storage: partition key = the event's identity, row key = its
 * content digest. Writes are conditional (create only if absent, replace only at the ETag read).
 * Reads never create anything (ops readers only hold Storage Table Data Reader); a create that
 * finds the table missing creates it (infra creates it in Azure, Azurite starts empty).
 */
export class TableAuditLog implements AuditLog {
  constructor(private readonly table: TableClient) {}

  async read(key: RecordKey): Promise<StoredRecord | undefined> {
    try {
      const entity = await this.call('read', (abortSignal) =>
        this.table.getEntity<Entity>(key.identityKey, key.contentDigest, { abortSignal }),
      );
      return {
        record: fromEntity(entity),
        etag: entity.etag,
        ...(entity.timestamp === undefined ? {} : { modifiedAt: entity.timestamp }),
      };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw unavailable('read', error);
    }
  }

  async create(record: AuditRecord): Promise<StoredRecord | undefined> {
    const entity = toEntity(record);
    const attempt = () =>
      this.call('write', (abortSignal) => this.table.createEntity(entity, { abortSignal }));
    try {
      const response = await attempt().catch(async (error: unknown) => {
        if (!isTableNotFound(error)) throw error;
        await this.createTable();
        return attempt();
      });
      return { record, etag: etagOf(response) };
    } catch (error) {
      if (statusOf(error) === 409) return undefined;
      throw unavailable('write', error);
    }
  }

  async replace(record: AuditRecord, etag: string): Promise<StoredRecord | undefined> {
    try {
      const response = await this.call('write', (abortSignal) =>
        this.table.updateEntity(toEntity(record), 'Replace', { etag, abortSignal }),
      );
      return { record, etag: etagOf(response) };
    } catch (error) {
      // 412: the record moved since it was read; 404: it was deleted. Either way, read again.
      if (statusOf(error) === 412 || statusOf(error) === 404) return undefined;
      throw unavailable('write', error);
    }
  }

  async listIdentity(identityKey: string): Promise<AuditRecord[]> {
    return (await this.query(odata`PartitionKey eq ${identityKey}`)).map((s) => s.record);
  }

  async findByUser(userIdOrUpn: string): Promise<StoredRecord[]> {
    const key = userIdOrUpn.toLowerCase();
    const found = await this.query(
      odata`userKey eq ${key} or objectId eq ${key} or upnKey eq ${key}`,
    );
    return found.sort((a, b) => a.record.lastAttemptAt.localeCompare(b.record.lastAttemptAt));
  }

  async findByEventId(eventId: string): Promise<AuditRecord[]> {
    return (await this.query(odata`eventId eq ${eventId}`)).map((s) => s.record);
  }

  async listSince(since: Date): Promise<AuditRecord[]> {
    // lastAttemptAt is always toISOString() (fixed width, UTC), so text order is time order.
    return (await this.query(odata`lastAttemptAt ge ${since.toISOString()}`)).map((s) => s.record);
  }

  async listByOutcome(outcome: Outcome): Promise<StoredRecord[]> {
    const found = await this.query(odata`outcome eq ${outcome}`);
    return found.sort((a, b) => a.record.firstAttemptAt.localeCompare(b.record.firstAttemptAt));
  }

  private async query(filter: string): Promise<StoredRecord[]> {
    try {
      return await this.call('read', async (abortSignal) => {
        const found: StoredRecord[] = [];
        const pages = this.table.listEntities<Entity>({ queryOptions: { filter }, abortSignal });
        for await (const entity of pages)
          found.push({ record: fromEntity(entity), etag: entity.etag });
        return found;
      });
    } catch (error) {
      if (isTableNotFound(error)) return [];
      throw unavailable('read', error);
    }
  }

  private async createTable(): Promise<void> {
    try {
      // createTable ignores "already exists": another instance may have won the race.
      await this.call('create', (abortSignal) => this.table.createTable({ abortSignal }));
    } catch (error) {
      throw unavailable('create', error);
    }
  }

  private call<T>(
    what: 'read' | 'write' | 'create',
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    return bounded(what, work);
  }
}

/** The partition of the person timelines in the audit table (no audit record has this key). */
export const TIMELINE_PARTITION = 'person-timeline';

interface TimelineEntity {
  partitionKey: string;
  rowKey: string;
  /** The timeline as JSON (a Table string property holds 32K characters: 50 intents fit). */
  timeline: string;
}

/**
 * The person timelines in the audit table: partition TIMELINE_PARTITION, row key the lower-cased
 * object id, written conditionally like the records. The entity has none of the properties the
 * record queries filter on, so audit reads never see it.
 */
export class TableTimelineStore implements TimelineStore {
  constructor(private readonly table: TableClient) {}

  async read(personId: string): Promise<StoredTimeline | undefined> {
    try {
      const entity = await bounded('read', (abortSignal) =>
        this.table.getEntity<TimelineEntity>(TIMELINE_PARTITION, personId.toLowerCase(), {
          abortSignal,
        }),
      );
      return { timeline: JSON.parse(entity.timeline) as Timeline, etag: entity.etag };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw unavailable('read', error);
    }
  }

  async create(timeline: Timeline): Promise<StoredTimeline | undefined> {
    const attempt = () =>
      bounded('write', (abortSignal) =>
        this.table.createEntity(entityOf(timeline), { abortSignal }),
      );
    try {
      const response = await attempt().catch(async (error: unknown) => {
        if (!isTableNotFound(error)) throw error;
        await bounded('create', (abortSignal) => this.table.createTable({ abortSignal }));
        return attempt();
      });
      return { timeline, etag: etagOf(response) };
    } catch (error) {
      if (statusOf(error) === 409) return undefined;
      throw unavailable('write', error);
    }
  }

  async replace(timeline: Timeline, etag: string): Promise<StoredTimeline | undefined> {
    try {
      const response = await bounded('write', (abortSignal) =>
        this.table.updateEntity(entityOf(timeline), 'Replace', { etag, abortSignal }),
      );
      return { timeline, etag: etagOf(response) };
    } catch (error) {
      if (statusOf(error) === 412 || statusOf(error) === 404) return undefined;
      throw unavailable('write', error);
    }
  }
}

function entityOf(timeline: Timeline): TimelineEntity {
  return {
    partitionKey: TIMELINE_PARTITION,
    rowKey: timeline.personId.toLowerCase(),
    timeline: JSON.stringify(timeline),
  };
}

/** One table operation within its budget; a hung store ends as AuditUnavailable. */
function bounded<T>(
  what: 'read' | 'write' | 'create',
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  return withDeadline(
    Budgets.auditCallMs,
    () =>
      unavailable(
        what,
        new Error(`the audit store did not answer within ${Budgets.auditCallMs / 1000} s`),
      ),
    work,
  );
}

function etagOf(response: { etag?: string }): string {
  if (response.etag === undefined) throw new Error('Table Storage returned no ETag.');
  return response.etag;
}

function unavailable(what: 'read' | 'write' | 'create', error: unknown): OffboardingError {
  if (error instanceof OffboardingError) return error;
  const status = statusOf(error);
  const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
  const hint =
    status === 403
      ? ' The identity needs the Storage Table Data Contributor role on the audit storage account.'
      : '';
  return new OffboardingError(
    ErrorCodes.AuditUnavailable,
    `Could not ${what} the audit ${what === 'create' ? 'table' : 'record'}${status ? ` (HTTP ${status})` : ''}: ${reason}.${hint}`,
    { retryable: true, cause: error },
  );
}

function toEntity(record: AuditRecord): Entity {
  const entity: Entity = { partitionKey: record.identityKey, rowKey: record.contentDigest };
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined || key === 'identityKey' || key === 'contentDigest') continue;
    entity[key] = (JSON_FIELDS as readonly string[]).includes(key) ? JSON.stringify(value) : value;
  }
  // Lower-cased copies for case-insensitive lookups by user.
  if (record.user !== undefined) entity.userKey = record.user.toLowerCase();
  if (record.objectId !== undefined) entity.objectId = record.objectId.toLowerCase();
  if (record.userPrincipalName !== undefined)
    entity.upnKey = record.userPrincipalName.toLowerCase();
  return entity;
}

const INTERNAL = new Set([
  'partitionKey',
  'rowKey',
  'etag',
  'timestamp',
  'odata.metadata',
  'userKey',
  'upnKey',
]);

function fromEntity(entity: TableEntityResult<Entity>): AuditRecord {
  const record: Record<string, unknown> = {
    identityKey: entity.partitionKey,
    contentDigest: entity.rowKey,
  };
  for (const [key, value] of Object.entries(entity)) {
    if (INTERNAL.has(key)) continue;
    record[key] =
      (JSON_FIELDS as readonly string[]).includes(key) && typeof value === 'string'
        ? JSON.parse(value)
        : value;
  }
  record.duplicates ??= 0;
  return record as unknown as AuditRecord;
}
