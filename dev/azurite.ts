import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';

export interface AzuriteTable {
  /** Connection string for the table endpoint, with this run's random account key. */
  connectionString: string;
  port: number;
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

/**
 * Starts Azurite's table service in memory on a free loopback port. The account key is random for
 * each run (AZURITE_ACCOUNTS), so no key is ever committed, not even the emulator's well-known one.
 */
export async function startAzuriteTable(
  options: { port?: number; silent?: boolean } = {},
): Promise<AzuriteTable> {
  const port = options.port ?? (await freePort());
  const key = randomBytes(32).toString('base64');
  const child: ChildProcess = spawn(
    process.execPath,
    [
      require.resolve('azurite/dist/src/table/main.js'),
      '--tableHost',
      '127.0.0.1',
      '--tablePort',
      String(port),
      '--inMemoryPersistence',
      '--disableTelemetry',
      '--silent',
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
    const deadline = setTimeout(
      () => reject(new Error(`Azurite did not start within 20 s:\n${output}`)),
      20_000,
    );
    const check = setInterval(() => {
      if (/successfully (listening|started)/i.test(output)) {
        clearTimeout(deadline);
        clearInterval(check);
        resolve();
      }
    }, 50);
    child.once('exit', (code) => {
      clearTimeout(deadline);
      clearInterval(check);
      reject(new Error(`Azurite exited with code ${code}:\n${output}`));
    });
  });

  return {
    port,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${key};TableEndpoint=http://127.0.0.1:${port}/${ACCOUNT};`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
