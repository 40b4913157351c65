import { userInfo } from 'node:os';
import { operatorName } from '../shared/app/config';

/** Where a command writes; the real process in production, strings in a test. */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
  /** Progress lines go to stderr only on a terminal; pipes and CI stay quiet. */
  interactive?: boolean;
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/** "\rlabel done/total" on a terminal, nothing in a pipe. */
export function progressReporter(io: Io, label: string, total?: number): (done: number) => void {
  if (!io.interactive) return () => undefined;
  return (done) => io.stderr(`\r${label} ${done}${total === undefined ? '' : `/${total}`}`);
}

/** Who runs an ops command, recorded on what it sends. */
export function operator(): string {
  try {
    return operatorName(() => userInfo().username);
  } catch {
    return 'unknown';
  }
}
