import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';

export interface AzuriteTable {
  /**
   * Connection string for the table and blob endpoints (the audit table and the immutable audit
   * log live in one account), with this run's random account key.
   */
  connectionString: string;
  /** The table service's port. */
  port: number;
  /** The blob service's port (append blobs of the immutable audit log). */
  blobPort: number;
  stop(): Promise<void>;
}

const ACCOUNT = 'devaudit';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/** One Azurite service (table or blob) as a child process, listening once this resolves. */
async function startService(
  service: 'table' | 'blob',
  port: number,
  key: string,
): Promise<ChildProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      require.resolve(`azurite/dist/src/${service}/main.js`),
      `--${service}Host`,
      '127.0.0.1',
      `--${service}Port`,
      String(port),
      '--inMemoryPersistence',
      '--disableTelemetry',
      '--silent',
      // The Blob SDK speaks a newer service version than this Azurite (the last for Node 20) knows;
      // append blobs, listing and download are the same in both.
      // In memory: a bound well above what a test run appends, rather than half the machine's memory.
      ...(service === 'blob' ? ['--skipApiVersionCheck', '--extentMemoryLimit', '256'] : []),
    ],
    {
      env: { ...process.env, AZURITE_ACCOUNTS: `${ACCOUNT}:${key}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));

  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`Azurite ${service} did not start within 20 s:\n${output}`));
    }, 20_000);
    const check = setInterval(() => {
      if (/successfully (listen|start)/i.test(output)) {
        clearTimeout(deadline);
        clearInterval(check);
        resolve();
      }
    }, 50);
    child.once('exit', (code) => {
      clearTimeout(deadline);
      clearInterval(check);
      reject(new Error(`Azurite ${service} exited with code ${code}:\n${output}`));
    });
  });
  return child;
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * Starts Azurite's table and blob services in memory on free loopback ports, for one account. The
 * account key is random for each run (AZURITE_ACCOUNTS), so no key is ever committed, not even the
 * emulator's well-known one. Azurite accepts append blobs but does not enforce immutability
 * policies (Azure does): tests check what the app asks for, the Bicep checks the policy.
 */
export async function startAzuriteTable(
  options: { port?: number; blobPort?: number; silent?: boolean } = {},
): Promise<AzuriteTable> {
  const port = options.port ?? (await freePort());
  const blobPort = options.blobPort ?? (await freePort());
  const key = randomBytes(32).toString('base64');
  const started = await Promise.allSettled([
    startService('table', port, key),
    startService('blob', blobPort, key),
  ]);
  const children = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(children.map(stopChild));
    throw failed.reason;
  }

  return {
    port,
    blobPort,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${key};` +
      `TableEndpoint=http://127.0.0.1:${port}/${ACCOUNT};BlobEndpoint=http://127.0.0.1:${blobPort}/${ACCOUNT};`,
    stop: async () => {
      await Promise.all(children.map(stopChild));
    },
  };
}
