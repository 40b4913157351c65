import type { Server } from 'node:net';

/** Listens on 127.0.0.1 (port 0: a free one) and resolves with the port, or rejects on error. */
export function listenOnLoopback(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      if (typeof address === 'object' && address !== null) resolve(address.port);
      else reject(new Error('the server has no TCP address'));
    });
  });
}
