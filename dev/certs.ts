import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The local development certificates made by `node dev/with-dev-ca.mjs` (under `.local/certs`,
 * gitignored): a CA, and a server certificate for localhost / 127.0.0.1 / ::1 signed by it.
 */
export interface DevCertificates {
  /** PEM private key of the server certificate. */
  key: string;
  /** PEM server certificate. */
  cert: string;
  /** PEM CA certificate (the trust anchor to hand to NODE_EXTRA_CA_CERTS). */
  ca: string;
  /** Absolute path of the CA certificate file. */
  caPath: string;
}

const HOW_TO_FIX =
  'Run the command through the dev CA wrapper, which creates them and makes Node trust the CA: ' +
  '`node dev/with-dev-ca.mjs <command>` (npm test already does this).';

/** Repository root: the nearest ancestor of this file holding a package.json (works from dist/ too). */
function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(__dirname, '..');
    dir = parent;
  }
}

/** Directory of the dev certificates; `DEV_CERTS_DIR` overrides the default `<repo>/.local/certs`. */
export function devCertificatesDir(): string {
  return process.env.DEV_CERTS_DIR
    ? resolve(process.env.DEV_CERTS_DIR)
    : join(repoRoot(), '.local', 'certs');
}

export function loadDevCertificates(): DevCertificates {
  const dir = devCertificatesDir();
  const caPath = join(dir, 'ca.pem');
  const files = { key: join(dir, 'server-key.pem'), cert: join(dir, 'server.pem'), ca: caPath };
  const missing = Object.values(files).filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new Error(`Development certificates not found (${missing.join(', ')}). ${HOW_TO_FIX}`);
  }
  try {
    return {
      key: readFileSync(files.key, 'utf8'),
      cert: readFileSync(files.cert, 'utf8'),
      ca: readFileSync(files.ca, 'utf8'),
      caPath,
    };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Development certificates in ${dir} are unreadable (${reason}). ${HOW_TO_FIX}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * True when this process was started with NODE_EXTRA_CA_CERTS naming a file that contains the dev
 * CA. Node reads that variable only at start-up, so setting it later has no effect on fetch/https.
 */
export function isDevCaTrusted(certs: DevCertificates = loadDevCertificates()): boolean {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (!extra) return false;
  try {
    const normalise = (pem: string) => pem.replace(/\r/g, '').trim();
    return normalise(readFileSync(extra, 'utf8')).includes(normalise(certs.ca));
  } catch {
    return false;
  }
}

/** Throws an explanatory error unless {@link isDevCaTrusted}. */
export function assertDevCaTrusted(certs: DevCertificates = loadDevCertificates()): void {
  if (!isDevCaTrusted(certs)) {
    throw new Error(
      `This process does not trust the development CA (${certs.caPath}): NODE_EXTRA_CA_CERTS is ` +
        `${process.env.NODE_EXTRA_CA_CERTS ? `"${process.env.NODE_EXTRA_CA_CERTS}"` : 'not set'}. ` +
        HOW_TO_FIX,
    );
  }
}
