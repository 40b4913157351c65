import { odata, RestError, TableClient, type TableEntityResult } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { AuditConfig } from '../config';
import { ErrorCodes, OffboardingError } from '../errors';
import type { AuditLog, AuditRecord } from '../ports';

const ROW_KEY = 'final';
/** Properties stored as JSON text (Table Storage has no arrays or objects). */
const JSON_FIELDS = [
  'requestedActions',
  'actions',
  'verification',
  'graphRequestIds',
  'notes',
] as const;
const CONCURRENCY_RETRIES = 5;

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

/**
 * Table keys may not contain / \ # ? or control characters, while CloudEvents ids may: the
 * partition key is the id in base64url, and the id itself is a property.
 */
export function partitionKeyFor(eventId: string): string {
  return Buffer.from(eventId, 'utf8').toString('base64url');
}

export function createTableClient(
  config: AuditConfig,
  credential: TokenCredential | undefined,
): TableClient {
  if (config.connectionString !== undefined) {
    return TableClient.fromConnectionString(config.connectionString, config.tableName, {
      // Azurite speaks plain http on loopback; Azure endpoints are https regardless.
      allowInsecureConnection: /UseDevelopmentStorage=true|http:\/\/(127\.0\.0\.1|localhost)/i.test(
        config.connectionString,
      ),
    });
  }
  if (config.endpoint === undefined || credential === undefined) {
    throw new OffboardingError(
      ErrorCodes.InvalidConfiguration,
      'Setting AUDIT_TABLE_ENDPOINT is required.',
      {
        retryable: false,
      },
    );
  }
  return new TableClient(config.endpoint, config.tableName, credential);
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
 * The audit log in Azure Table Storage: one entity per event id. Reads never create anything (ops
 * readers only hold Storage Table Data Reader); a write that finds the table missing creates it
 * (infra creates it in Azure, Azurite starts empty).
 */
export class TableAuditLog implements AuditLog {
  constructor(private readonly table: TableClient) {}

  async get(eventId: string): Promise<AuditRecord | undefined> {
    try {
      const entity = await this.table.getEntity<Entity>(partitionKeyFor(eventId), ROW_KEY);
      return fromEntity(entity);
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw unavailable('read', error);
    }
  }

  async put(record: AuditRecord): Promise<void> {
    const entity = toEntity(record);
    try {
      await this.table.upsertEntity(entity, 'Replace');
    } catch (error) {
      if (!isTableNotFound(error)) throw unavailable('write', error);
      await this.createTable();
      try {
        await this.table.upsertEntity(entity, 'Replace');
      } catch (retryError) {
        throw unavailable('write', retryError);
      }
    }
  }

  async recordDuplicate(eventId: string, at: string): Promise<void> {
    // Optimistic concurrency: two duplicates at once must both be counted.
    for (let attempt = 0; attempt < CONCURRENCY_RETRIES; attempt++) {
      try {
        const entity = await this.table.getEntity<Entity>(partitionKeyFor(eventId), ROW_KEY);
        const duplicates = typeof entity.duplicates === 'number' ? entity.duplicates : 0;
        await this.table.updateEntity(
          {
            partitionKey: entity.partitionKey,
            rowKey: ROW_KEY,
            duplicates: duplicates + 1,
            lastDuplicateAt: at,
          },
          'Merge',
          { etag: entity.etag },
        );
        return;
      } catch (error) {
        if (error instanceof RestError && error.statusCode === 412) continue;
        throw unavailable('write', error);
      }
    }
    throw unavailable('write', new Error('the record kept changing under us'));
  }

  async findByUser(userIdOrUpn: string): Promise<AuditRecord[]> {
    const key = userIdOrUpn.toLowerCase();
    const filter = odata`userKey eq ${key} or objectId eq ${key} or upnKey eq ${key}`;
    const records: AuditRecord[] = [];
    try {
      for await (const entity of this.table.listEntities<Entity>({ queryOptions: { filter } })) {
        records.push(fromEntity(entity));
      }
    } catch (error) {
      if (isTableNotFound(error)) return [];
      throw unavailable('read', error);
    }
    return records.sort((a, b) => a.lastAttemptAt.localeCompare(b.lastAttemptAt));
  }

  private async createTable(): Promise<void> {
    try {
      // createTable ignores "already exists": another instance may have won the race.
      await this.table.createTable();
    } catch (error) {
      throw unavailable('create', error);
    }
  }
}

function unavailable(what: 'read' | 'write' | 'create', error: unknown): OffboardingError {
  const status = error instanceof RestError ? error.statusCode : undefined;
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
  const entity: Entity = { partitionKey: partitionKeyFor(record.eventId), rowKey: ROW_KEY };
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined) continue;
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
  const record: Record<string, unknown> = {};
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
