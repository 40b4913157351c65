/**
 * The immutable audit log end to end: events through the function handlers (Service Bus stand-in,
 * local runner, Graph stand-in), the audit table and the append blobs in Azurite, and
 * `offboard audit verify` as ops run it (the built CLI). Azurite does not enforce immutability
 * policies (Azure does; infra/modules/storage.bicep sets the policy, test/infra/auditLog.test.ts
 * checks it): what is tested here is that the app asks for nothing but "create if absent" and
 * Append Block, and that verify catches what the table and the log disagree on.
 *
 * Between the app and Azurite's blob service sits a recording HTTP proxy: it sees every blob
 * request the app makes, and can fail appends on demand (the blob service "down").
 */
import { TableClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { listenOnLoopback } from '../../dev/loopback';
import { differingFields, type VerifyReport } from '../../cli/auditVerify';
import {
  openImmutableAuditLog,
  type LogLine,
  type ReadLogLine,
} from '../../shared/adapters/immutableAuditLog';
import { isFinal, latestRecordFor } from '../../shared/core/auditRecords';
import type { AuditRecord } from '../../shared/core/ports';
import { BREAKGLASS_UPN } from '../../dev/graph-standin/index';
import { runCli } from '../support/cli';
import { startPipeline, type Pipeline } from '../support/runner';
import { waitFor } from '../support/wait';
import { cloudEvent, startWorld, type World } from '../support/world';

interface BlobRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

interface BlobProxy {
  port: number;
  requests: BlobRequest[];
  /** While set, every Append Block is answered 503 Server Busy (nothing reaches Azurite). */
  failAppends: boolean;
  stop(): Promise<void>;
}

async function startBlobProxy(targetPort: number): Promise<BlobProxy> {
  const proxy = { requests: [] as BlobRequest[], failAppends: false };
  const server: Server = createServer((incoming, outgoing) => {
    const url = incoming.url ?? '';
    proxy.requests.push({ method: incoming.method ?? '', url, headers: incoming.headers });
    if (proxy.failAppends && /[?&]comp=appendblock/i.test(url)) {
      incoming.resume();
      outgoing.writeHead(503, { 'x-ms-error-code': 'ServerBusy' }).end();
      return;
    }
    const upstream = request(
      {
        host: '127.0.0.1',
        port: targetPort,
        method: incoming.method,
        path: url,
        headers: incoming.headers,
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    upstream.on('error', () => outgoing.destroy());
    incoming.pipe(upstream);
  });
  const port = await listenOnLoopback(server);
  return Object.assign(proxy, {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

const base = process.env.TEST_AZURITE_CONNECTION_STRING ?? '';
const blobPort = Number(/BlobEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(base)?.[1]);
const CONTAINER = `audit-log-${randomUUID().slice(0, 8)}`;

let proxy: BlobProxy;
/** Between `offboard audit verify` and Azurite: every blob request the command makes. */
let cliProxy: BlobProxy;
let world: World;
let pipeline: Pipeline;
let table: TableClient;

beforeAll(async () => {
  proxy = await startBlobProxy(blobPort);
  cliProxy = await startBlobProxy(blobPort);
  world = await startWorld({
    AUDIT_TABLE_CONNECTION_STRING: base.replace(
      /BlobEndpoint=http:\/\/127\.0\.0\.1:\d+/,
      `BlobEndpoint=http://127.0.0.1:${proxy.port}`,
    ),
    AUDIT_LOG_CONTAINER: CONTAINER,
  });
  pipeline = startPipeline(world);
  table = TableClient.fromConnectionString(
    world.env.AUDIT_TABLE_CONNECTION_STRING!,
    world.env.AUDIT_TABLE_NAME!,
    { allowInsecureConnection: true },
  );
});
afterAll(async () => {
  await pipeline.stop();
  await world.stop();
  await proxy.stop();
  await cliProxy.stop();
});

const log = () =>
  openImmutableAuditLog(
    { container: CONTAINER, connectionString: world.env.AUDIT_TABLE_CONNECTION_STRING! },
    undefined,
  );
const readLog = async (): Promise<LogLine[]> => {
  const { lines } = await log().readBetween(new Date(Date.now() - 3_600_000), new Date());
  return lines.flatMap(({ entry }: ReadLogLine) => ('unreadable' in entry ? [] : [entry]));
};
const linesOf = async (record: AuditRecord) =>
  (await readLog()).filter(
    (l) => l.identityKey === record.identityKey && l.contentDigest === record.contentDigest,
  );

/** The record once final and released by its run. */
const finalRecord = (eventId: string) =>
  waitFor(`${eventId} to be final`, async () => {
    const r = await latestRecordFor(world.runtime.audit, eventId);
    return r !== undefined && isFinal(r) && r.claimedBy === undefined ? r : undefined;
  });

const verify = (...args: string[]) =>
  runCli(['audit', 'verify', '--since', '1h', ...args], {
    ...world.env,
    AUDIT_TABLE_CONNECTION_STRING: base.replace(
      /BlobEndpoint=http:\/\/127\.0\.0\.1:\d+/,
      `BlobEndpoint=http://127.0.0.1:${cliProxy.port}`,
    ),
  });

/** Every request the app made to the blob service that is not a read. */
const writes = () => proxy.requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD');

describe('the immutable audit log', () => {
  const feed: Record<string, unknown>[] = [];
  const finals: AuditRecord[] = [];

  it('holds every final record of a feed, one line each, equal to the table record', async () => {
    for (let i = 0; i < 4; i++)
      feed.push(cloudEvent('employee.leaving', { user: world.newUser().upn, ticket: `T-${i}` }));
    feed.push(cloudEvent('employee.leaving', { user: BREAKGLASS_UPN })); // refused
    feed.push(cloudEvent('mfa.enabled', { user: world.newUser().upn }));
    for (const event of feed)
      await pipeline.send(event.type === 'mfa.enabled' ? 'mfa-enabled' : 'employee-leaving', event);
    for (const event of feed) finals.push(await finalRecord(event.id as string));
    expect(finals.map((r) => r.outcome).sort()).toEqual([
      'refused',
      'succeeded',
      'succeeded',
      'succeeded',
      'succeeded',
      'succeeded',
    ]);

    const lines = await waitFor('a log line for every final record', async () => {
      const all = await readLog();
      const missing = finals.filter(
        (r) =>
          !all.some((l) => l.identityKey === r.identityKey && l.contentDigest === r.contentDigest),
      );
      return missing.length === 0 ? all : undefined;
    });
    for (const record of finals) {
      const own = lines.filter(
        (l) => l.identityKey === record.identityKey && l.contentDigest === record.contentDigest,
      );
      expect(own.length).toBeGreaterThanOrEqual(1);
      // The table's copy (read back through Table Storage) and the log's latest line agree field
      // for field. A refused event is redelivered until it is dead-lettered, each delivery counting
      // an attempt in the table and logging the record again: they agree once both caught up.
      const [table, latest] = await waitFor(
        `the latest log line of ${record.eventId} to equal its table record`,
        async () => {
          const current = await finalRecord(record.eventId);
          const line = (await linesOf(current)).at(-1);
          return line !== undefined && differingFields(current, line.record).length === 0
            ? ([current, line] as const)
            : undefined;
        },
      );
      expect(latest.format).toBe(1);
      expect(Date.parse(latest.appendedAt)).toBeGreaterThanOrEqual(Date.parse(table.lastAttemptAt));
    }
    expect(JSON.stringify(lines)).not.toMatch(/password"\s*:|access_token|Bearer /i);
  });

  it('is only ever created if absent and appended to: no overwrite, no delete, no other blob type', () => {
    const seen = writes();
    expect(seen.length).toBeGreaterThan(0);
    const kinds = seen.map(({ method, url, headers }) => {
      if (method === 'PUT' && /[?&]comp=appendblock(&|$)/.test(url)) return 'append block';
      if (
        method === 'PUT' &&
        !url.includes('comp=') &&
        headers['x-ms-blob-type'] === 'AppendBlob' &&
        headers['if-none-match'] === '*'
      )
        return 'create append blob if absent';
      // Azurite starts empty; in Azure the infrastructure creates the container.
      if (method === 'PUT' && /[?&]restype=container(&|$)/.test(url) && !url.includes('comp='))
        return 'create container';
      return `${method} ${url} ${JSON.stringify(headers)}`;
    });
    expect([...new Set(kinds)].sort()).toEqual([
      'append block',
      'create append blob if absent',
      'create container',
    ]);
  });

  it('takes a record again once the blob service is back: the delivery is retried', async () => {
    proxy.failAppends = true;
    const appendsBefore = proxy.requests.length;
    const event = cloudEvent('employee.leaving', { user: world.newUser().upn });
    await pipeline.send('employee-leaving', event);
    const record = await finalRecord(event.id as string);
    expect(record.outcome).toBe('succeeded');
    await waitFor('an append to fail', () =>
      proxy.requests.slice(appendsBefore).some((r) => r.url.includes('comp=appendblock')),
    );
    await waitFor(
      'the run to report the record undelivered',
      () =>
        pipeline.logs.some((l) => JSON.stringify(l).includes('FinalRecordUndelivered')) ||
        world.logs.some((l) => l.text.includes('FinalRecordUndelivered')),
    );
    expect(await linesOf(record)).toEqual([]);

    proxy.failAppends = false;
    const appended = await waitFor(
      'the record in the log',
      async () => {
        const own = await linesOf(record);
        return own.length > 0 ? own : undefined;
      },
      // The retried delivery may be a copy parked for later (the retry policy's delay): wait for it.
      90_000,
    );
    expect(differingFields(await finalRecord(event.id as string), appended.at(-1)!.record)).toEqual(
      [],
    );
    finals.push(record);
  }, 120_000);

  it('audit verify reports clean, then an edited record, a deleted one and one missing from the log', async () => {
    const clean = await verify('--json');
    expect(clean.stderr).toBe('');
    expect(clean.code).toBe(0);
    const before = JSON.parse(clean.stdout) as VerifyReport;
    expect(before).toMatchObject({
      clean: true,
      differs: [],
      missingFromLog: [],
      goneFromTable: [],
    });
    expect(before.finalRecords).toBe(finals.length);

    const [edited, deleted] = finals;
    await table.updateEntity(
      {
        partitionKey: edited!.identityKey,
        rowKey: edited!.contentDigest,
        ticket: 'T-rewritten',
        actions: JSON.stringify(
          edited!.actions.map((a) => ({ ...a, status: 'failed', errorCode: 'Forbidden' })),
        ),
      },
      'Merge',
    );
    await table.deleteEntity(deleted!.identityKey, deleted!.contentDigest);
    // A crash between the table write and the append, long enough ago not to be in flight.
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000).toISOString();
    const unlogged: AuditRecord = {
      ...finals[2]!,
      identityKey: `unlogged-${randomUUID()}`,
      eventId: 'evt-never-logged',
      firstAttemptAt: tenMinutesAgo,
      lastAttemptAt: tenMinutesAgo,
    };
    await world.runtime.audit.create(unlogged);

    const found = await verify('--json');
    expect(found.code).toBe(1);
    const after = JSON.parse(found.stdout) as VerifyReport;
    expect(after.clean).toBe(false);
    expect(after.differs).toEqual([
      expect.objectContaining({ eventId: edited!.eventId, fields: ['actions', 'ticket'] }),
    ]);
    expect(after.goneFromTable).toEqual([
      expect.objectContaining({ eventId: deleted!.eventId, loggedOutcome: deleted!.outcome }),
    ]);
    expect(after.missingFromLog).toEqual([
      expect.objectContaining({ eventId: 'evt-never-logged', identityKey: unlogged.identityKey }),
    ]);
    expect(after.noLongerFinal).toEqual([]);
    expect(after.changedWithoutRun).toEqual([]);
    expect(after.unreadable).toEqual([]);

    const text = await verify();
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('Differ from the log (1):');
    expect(text.stdout).toContain('Final but missing from the log (1):');
    expect(text.stdout).toContain('In the log, gone from the table (1):');
    expect(text.stdout).toMatch(/FOUND DIFFERENCES/);
    // Verify only reads (the operator holds the reader role): list, properties, download.
    expect(cliProxy.requests.length).toBeGreaterThan(0);
    expect(
      cliProxy.requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD').map((r) => r.url),
    ).toEqual([]);
  }, 60_000);

  it('audit verify is not fooled by a lastDuplicateAt in the future: an edit, and a forged record with no log line', async () => {
    const target = finals[2]!;
    // The same edit plus a lastDuplicateAt far ahead (it used to set the in-flight window).
    await table.updateEntity(
      {
        partitionKey: target.identityKey,
        rowKey: target.contentDigest,
        ticket: 'T-rewritten',
        lastDuplicateAt: '2099-01-01T00:00:00.000Z',
      },
      'Merge',
    );
    // A final record nobody logged, that says it was duplicated in 2099.
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000).toISOString();
    const forged: AuditRecord = {
      ...target,
      identityKey: `forged-${randomUUID()}`,
      eventId: 'evt-forged',
      firstAttemptAt: tenMinutesAgo,
      lastAttemptAt: tenMinutesAgo,
      lastDuplicateAt: '2099-01-01T00:00:00.000Z',
      duplicates: 1,
    };
    await world.runtime.audit.create(forged);

    const found = await verify('--json');
    expect(found.code).toBe(1);
    const report = JSON.parse(found.stdout) as VerifyReport;
    expect(report.differs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ eventId: target.eventId, fields: ['ticket'] }),
      ]),
    );
    expect(report.missingFromLog).toEqual(
      expect.arrayContaining([expect.objectContaining({ eventId: 'evt-forged' })]),
    );
    expect(report.futureTimes.map((f) => [f.eventId, f.fields])).toEqual(
      expect.arrayContaining([
        [target.eventId, ['lastDuplicateAt']],
        ['evt-forged', ['lastDuplicateAt']],
      ]),
    );
    expect(report.pending).toEqual([]);
    const text = await verify();
    expect(text.stdout).toContain('Times in the future');
  }, 60_000);
});
