import { createServer, connect, type Server, type Socket } from 'node:net';
import { listenOnLoopback } from '../../dev/loopback';

export interface TcpProxy {
  port: number;
  /** While down, open connections are cut and new ones are closed at once: a real outage. */
  setDown(down: boolean): void;
  stop(): Promise<void>;
}

/** A loopback TCP proxy that can fail on demand, to take a real dependency "down" and back. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let down = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream).pipe(client);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    setDown(value) {
      down = value;
      if (value) for (const socket of sockets) socket.destroy();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
