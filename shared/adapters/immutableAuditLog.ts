import { randomBytes } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import type {
  AppendBlobClient,
  BlobServiceClient,
  ContainerClient,
  StoragePipelineOptions,
} from '@azure/storage-blob';
import type { AppConfig, ImmutableLogConfig } from '../app/config';
import { Budgets, withDeadline } from './deadline';
import { ErrorCodes, OffboardingError } from '../core/errors';
import { isFinal } from '../core/lifecycle';
import type { AuditRecord, FinalRecordSink, RecordKey } from '../core/ports';

/**
 * The immutable audit log: every final record appended as one JSON line (one Append Block) to an
 * append blob, in a container under a time-based immutability policy (WORM with protected append
 * writes, see infra/modules/storage.bicep). The app's identity may only create blobs and append to
 * them there; it never reads, overwrites or deletes. `offboard audit verify` compares the table
 * with this log.
 *
 * Layout: `YYYY/MM/DD/HH/<writer>-<segment>.jsonl` (UTC hour of the append). One writer per process
 * (a random id), so instances never contend for a blob; a new blob every hour, and a new segment
 * when one reaches the 50,000 blocks an append blob can hold (20 records/s is 72,000 an hour).
 */

/** The version of a log line's shape; a reader refuses lines of a version it does not know. */
export const LOG_FORMAT_VERSION = 1;

/** One line of the log. */
export interface LogLine extends RecordKey {
  format: typeof LOG_FORMAT_VERSION;
  /** When this line was appended (the writer's clock, ISO 8601 UTC). */
  appendedAt: string;
  /** Which process appended it (a random id per process: its blobs are its own). */
  writer: string;
  record: AuditRecord;
}

/** A log line as read back, with where it is. */
export interface ReadLogLine {
  blob: string;
  /** 1-based line number in the blob. */
  line: number;
  /** The parsed line, or why it could not be read. */
  entry: LogLine | { unreadable: string };
}

type BlobSdk = typeof import('@azure/storage-blob');
let loadedSdk: BlobSdk | undefined;

/**
 * The Blob SDK, loaded on first use: loading it up front cost a third more module load time
 * than the app's other SDKs together (about 220 ms beside 680 ms, median of 9 in one run on a busy
 * machine), and the first final record is the first time the app needs it. A plain require (not
 * an import): the deployment package makes it a file of its own, read only when this runs
 * (dev/package-app.mjs), and the function app warms it up after start-up (Runtime.warmUp).
 */
function blobSdk(): BlobSdk {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy on purpose (see above)
  loadedSdk ??= require('@azure/storage-blob') as BlobSdk;
  return loadedSdk;
}

/** A blob name's hour prefix: `YYYY/MM/DD/HH/`. */
export function hourPrefix(at: Date): string {
  const iso = at.toISOString();
  return `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}/`;
}

/** The blob a writer appends to in an hour: segments roll over at the block limit. */
export function blobName(at: Date, writer: string, segment: number): string {
  return `${hourPrefix(at)}${writer}-${String(segment).padStart(4, '0')}.jsonl`;
}

const PIPELINE: StoragePipelineOptions = {
  // Few tries of bounded length; every call as a whole is bounded by withDeadline below.
  retryOptions: { maxTries: 3, tryTimeoutInMs: 10_000, maxRetryDelayInMs: 2_000 },
};

/** The log's container, from the settings: the connection string locally, the identity in Azure. */
export function logContainer(
  config: ImmutableLogConfig,
  credential: TokenCredential | undefined,
): ContainerClient {
  const sdk = blobSdk();
  if (config.connectionString !== undefined) {
    const service: BlobServiceClient = sdk.BlobServiceClient.fromConnectionString(
      config.connectionString,
      PIPELINE,
    );
    return service.getContainerClient(config.container);
  }
  if (config.endpoint === undefined || credential === undefined) {
    throw new OffboardingError(
      ErrorCodes.InvalidConfiguration,
      'Setting AUDIT_BLOB_ENDPOINT is required.',
      { retryable: false },
    );
  }
  return new sdk.ContainerClient(`${config.endpoint}/${config.container}`, credential, PIPELINE);
}

interface StorageFailure {
  status?: number;
  code?: string;
}

function failureOf(error: unknown): StorageFailure {
  if (typeof error !== 'object' || error === null) return {};
  const e = error as {
    statusCode?: number;
    code?: string;
    details?: { errorCode?: string };
    response?: { headers?: { get(name: string): string | undefined } };
  };
  const code = e.details?.errorCode ?? e.response?.headers?.get('x-ms-error-code') ?? e.code;
  return {
    ...(typeof e.statusCode === 'number' ? { status: e.statusCode } : {}),
    ...(code === undefined ? {} : { code }),
  };
}

/** Errors say where and how it failed, never what the record holds. */
function unavailable(what: string, error: unknown): OffboardingError {
  if (error instanceof OffboardingError) return error;
  const { status, code } = failureOf(error);
  const detail =
    [status === undefined ? '' : `HTTP ${status}`, code ?? ''].filter(Boolean).join(' ') ||
    (error instanceof Error ? error.name : 'no answer');
  const hint =
    status === 403
      ? ' The identity needs the audit log appender role on the container (the app) or Storage Blob Data Reader (an operator).'
      : '';
  return new OffboardingError(
    ErrorCodes.AuditUnavailable,
    `Could not ${what} the immutable audit log (${detail}).${hint}`,
    { retryable: true, cause: error },
  );
}

function bounded<T>(what: string, work: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  return withDeadline(
    Budgets.auditCallMs,
    () =>
      new OffboardingError(
        ErrorCodes.AuditUnavailable,
        `Could not ${what} the immutable audit log: no answer within ${Budgets.auditCallMs / 1000} s.`,
        { retryable: true },
      ),
    work,
  );
}

/**
 * Appends final records. At least once: the same record may be appended twice (a retried delivery,
 * a crash between the table write and the append); readers take the latest line of each key.
 * The only blob operations it makes are "create if it does not exist" (If-None-Match: *, which never
 * replaces a blob) and Append Block; a missing container is created only where the identity may
 * (Azurite: in Azure the infrastructure creates it and the app may not).
 */
export class ImmutableAuditSink implements FinalRecordSink {
  readonly name = 'immutable audit log';
  /** Blobs this process created or found, so each is created at most once per process. */
  private readonly ready = new Map<string, Promise<void>>();
  private hour = '';
  private segment = 0;

  constructor(
    private readonly container: () => ContainerClient,
    private readonly writer: string = randomBytes(6).toString('hex'),
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Loads the Blob SDK and builds the container's client; sends no request. */
  // eslint-disable-next-line @typescript-eslint/require-await -- a failure rejects, never throws
  async warmUp(): Promise<void> {
    this.container();
  }

  async accept(record: AuditRecord): Promise<void> {
    // A delayed departure is announced (the alert) but not final: the log keeps only final records.
    if (!isFinal(record)) return;
    const at = this.now();
    const line: LogLine = {
      format: LOG_FORMAT_VERSION,
      identityKey: record.identityKey,
      contentDigest: record.contentDigest,
      appendedAt: at.toISOString(),
      writer: this.writer,
      record,
    };
    const body = Buffer.from(JSON.stringify(line) + '\n', 'utf8');
    // A full blob rolls to the next segment; a bounded number of times (each try is a new blob).
    for (let rollovers = 0; ; rollovers++) {
      const name = this.currentBlob(at);
      const blob = this.container().getAppendBlobClient(name);
      try {
        await this.ensureBlob(name, blob);
        await bounded('append to', (abortSignal) =>
          blob.appendBlock(body, body.length, { abortSignal }),
        );
        return;
      } catch (error) {
        if (failureOf(error).code === 'BlockCountExceedsLimit' && rollovers < 3) {
          this.rollOver(name, at);
          continue;
        }
        throw unavailable('append to', error);
      }
    }
  }

  private currentBlob(at: Date): string {
    const hour = hourPrefix(at);
    if (hour !== this.hour) {
      this.hour = hour;
      this.segment = 0;
    }
    return blobName(at, this.writer, this.segment);
  }

  /** Concurrent appends that all found `full` move on once, not once each. */
  private rollOver(full: string, at: Date): void {
    if (blobName(at, this.writer, this.segment) === full) this.segment += 1;
  }

  private ensureBlob(name: string, blob: AppendBlobClient): Promise<void> {
    let pending = this.ready.get(name);
    if (pending === undefined) {
      pending = this.createBlob(blob).catch((error: unknown) => {
        this.ready.delete(name); // the next record tries again
        throw error;
      });
      this.ready.set(name, pending);
    }
    return pending;
  }

  private async createBlob(blob: AppendBlobClient): Promise<void> {
    const create = () =>
      bounded('create a blob in', (abortSignal) => blob.createIfNotExists({ abortSignal }));
    try {
      await create();
    } catch (error) {
      // Only `blobs/add/action` (the appender role) may be refused a Put Blob on a blob that already
      // exists (a create whose answer was lost) instead of told 409: the append that follows says
      // whether the blob is there and ours to append to.
      if (failureOf(error).status === 403) return;
      if (failureOf(error).code !== 'ContainerNotFound') throw error;
      await bounded('create the container of', (abortSignal) =>
        this.container().createIfNotExists({ abortSignal }),
      );
      await create();
    }
  }
}

/**
 * The sink the runtime gives every final record first. The SDK is loaded when the first record
 * arrives, not when the app starts.
 */
export function createImmutableAuditSink(
  config: AppConfig,
  credential: TokenCredential,
): FinalRecordSink | undefined {
  const settings = config.immutableLog;
  // Fail at start-up, not at the first record, when the log has nowhere to go.
  if (settings.connectionString === undefined && settings.endpoint === undefined) {
    throw new OffboardingError(
      ErrorCodes.InvalidConfiguration,
      'Setting AUDIT_BLOB_ENDPOINT is required: every final record is also appended to the immutable audit log.',
      { retryable: false },
    );
  }
  // A local connection string naming its table endpoint but no blob endpoint would make the SDK
  // guess https://<account>.blob.core.windows.net: say so instead of appending somewhere else.
  const local = settings.connectionString;
  if (local !== undefined && /TableEndpoint=/i.test(local) && !/BlobEndpoint=/i.test(local)) {
    throw new OffboardingError(
      ErrorCodes.InvalidConfiguration,
      'AUDIT_TABLE_CONNECTION_STRING names a TableEndpoint but no BlobEndpoint: the immutable audit log needs the blob service of the same account (dev/azurite.ts starts both).',
      { retryable: false },
    );
  }
  let container: ContainerClient | undefined;
  return new ImmutableAuditSink(() => (container ??= logContainer(settings, credential)));
}

/** Reads the log back (an operator's identity: Storage Blob Data Reader). */
export class ImmutableAuditLogReader {
  constructor(private readonly container: ContainerClient) {}

  /** Every line appended in the hours from `since` to `until` (whole hours, UTC). */
  async readBetween(since: Date, until: Date): Promise<{ blobs: string[]; lines: ReadLogLine[] }> {
    const names = await this.blobsBetween(since, until);
    const lines: ReadLogLine[] = [];
    for (const name of names) lines.push(...parseBlob(name, await this.download(name)));
    return { blobs: names, lines };
  }

  private async blobsBetween(since: Date, until: Date): Promise<string[]> {
    const first = hourPrefix(since);
    const last = hourPrefix(until);
    const names: string[] = [];
    // One listing per day (the name starts with the day), keeping the hours in range.
    for (const day of daysBetween(since, until)) {
      try {
        await bounded('list', async (abortSignal) => {
          for await (const blob of this.container.listBlobsFlat({ prefix: day, abortSignal })) {
            const hour = blob.name.slice(0, first.length);
            if (hour >= first && hour <= last) names.push(blob.name);
          }
        });
      } catch (error) {
        if (failureOf(error).code === 'ContainerNotFound') return [];
        throw unavailable('list', error);
      }
    }
    return names.sort();
  }

  private async download(name: string): Promise<string> {
    try {
      return await bounded('read', async (abortSignal) => {
        const buffer = await this.container
          .getBlobClient(name)
          .downloadToBuffer(0, undefined, { abortSignal });
        return buffer.toString('utf8');
      });
    } catch (error) {
      throw unavailable('read', error);
    }
  }
}

/** The `YYYY/MM/DD/` prefixes of every UTC day from `since` to `until`. */
function daysBetween(since: Date, until: Date): string[] {
  const days: string[] = [];
  const day = new Date(Date.UTC(since.getUTCFullYear(), since.getUTCMonth(), since.getUTCDate()));
  for (; day.getTime() <= until.getTime(); day.setUTCDate(day.getUTCDate() + 1))
    days.push(hourPrefix(day).slice(0, 11));
  return days;
}

/** The lines of one blob; a line that is not a log line of a known version is kept as unreadable. */
export function parseBlob(blob: string, text: string): ReadLogLine[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((raw, index) => ({ blob, line: index + 1, entry: parseLine(raw) }));
}

function parseLine(raw: string): LogLine | { unreadable: string } {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { unreadable: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { unreadable: 'not an object' };
  const line = value as Partial<LogLine>;
  if (line.format !== LOG_FORMAT_VERSION)
    return {
      unreadable: `format ${String(line.format)} (this reader knows ${LOG_FORMAT_VERSION})`,
    };
  if (
    typeof line.identityKey !== 'string' ||
    typeof line.contentDigest !== 'string' ||
    typeof line.appendedAt !== 'string' ||
    typeof line.record !== 'object' ||
    line.record === null
  )
    return { unreadable: 'a field is missing' };
  if (
    line.record.identityKey !== line.identityKey ||
    line.record.contentDigest !== line.contentDigest
  )
    return { unreadable: "the key does not match the record's" };
  return line as LogLine;
}

/** The reader for `offboard audit verify`, acting as the operator. */
export function openImmutableAuditLog(
  config: ImmutableLogConfig,
  credential: TokenCredential | undefined,
): ImmutableAuditLogReader {
  return new ImmutableAuditLogReader(logContainer(config, credential));
}
