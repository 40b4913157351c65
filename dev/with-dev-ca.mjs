#!/usr/bin/env node
// Usage: node dev/with-dev-ca.mjs <command> [args...]
//
// Makes sure a local development CA and a localhost server certificate signed by it exist under
// <repo>/.local/certs (generated with the pure-JS `selfsigned` package when missing, expired,
// unreadable or inconsistent), then runs <command> with NODE_EXTRA_CA_CERTS pointing at the CA so
// that Node's https module and fetch (undici) trust the HTTPS stand-ins started by the tests.
//
// Files (all gitignored through `.local/`; no private key is ever committed):
//   .local/certs/ca.pem           CA certificate (the trust anchor, public)
//   .local/certs/server.pem       leaf certificate: DNS:localhost, IP:127.0.0.1, IP:::1
//   .local/certs/server-key.pem   leaf private key (mode 0600)
// The CA private key is used once to sign the leaf and then discarded: when anything needs
// renewing, the CA and the leaf are generated again together.
//
// Without a command the script only ensures the certificates and prints their paths.

import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const certDir = join(repoRoot, '.local', 'certs');
export const paths = {
  dir: certDir,
  ca: join(certDir, 'ca.pem'),
  cert: join(certDir, 'server.pem'),
  key: join(certDir, 'server-key.pem'),
  bundle: join(certDir, 'ca-bundle.pem'),
};

const DAY_MS = 24 * 60 * 60 * 1000;
/** Renew when less than this much validity is left, so a long test run never crosses expiry. */
const RENEW_MARGIN_MS = 7 * DAY_MS;
const VALIDITY_DAYS = 365;

/** Returns a reason string when the files on disk are unusable, or undefined when they are fine. */
function problemWithExisting() {
  for (const file of [paths.ca, paths.cert, paths.key]) {
    if (!existsSync(file)) return `${file} is missing`;
  }
  try {
    const ca = new X509Certificate(readFileSync(paths.ca));
    const leaf = new X509Certificate(readFileSync(paths.cert));
    const key = createPrivateKey(readFileSync(paths.key));
    const now = Date.now();
    for (const [name, cert] of [
      ['CA', ca],
      ['server', leaf],
    ]) {
      if (Date.parse(cert.validFrom) > now) return `${name} certificate is not valid yet`;
      if (Date.parse(cert.validTo) - now < RENEW_MARGIN_MS)
        return `${name} certificate expires soon`;
    }
    if (!ca.ca) return 'ca.pem is not a CA certificate';
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey))
      return 'server.pem is not signed by ca.pem';
    if (!leaf.checkPrivateKey(key)) return 'server-key.pem does not match server.pem';
    if (!leaf.checkHost('localhost') || !leaf.checkIP('127.0.0.1') || !leaf.checkIP('::1')) {
      return 'server.pem lacks the localhost / 127.0.0.1 / ::1 subject alternative names';
    }
  } catch (error) {
    return `certificates are unreadable (${error instanceof Error ? error.message : String(error)})`;
  }
  return undefined;
}

async function generate() {
  // Loaded lazily: only needed when (re)generating.
  const { default: selfsigned } = await import('selfsigned');
  const notBefore = new Date(Date.now() - 60 * 60 * 1000); // tolerate a little clock skew
  const notAfter = new Date(notBefore.getTime() + VALIDITY_DAYS * DAY_MS);
  const common = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: notBefore };

  const ca = await selfsigned.generate(
    [
      { name: 'commonName', value: 'entra-offboarding local development CA' },
      { name: 'organizationName', value: 'entra-offboarding dev only - trusted nowhere else' },
    ],
    {
      ...common,
      notAfterDate: new Date(notAfter.getTime() + DAY_MS),
      extensions: [
        { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
        {
          name: 'keyUsage',
          keyCertSign: true,
          cRLSign: true,
          digitalSignature: true,
          critical: true,
        },
      ],
    },
  );
  const leaf = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    ...common,
    notAfterDate: notAfter,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });

  mkdirSync(certDir, { recursive: true });
  // Write to temporary names first, then rename, so a reader never sees a half-written file.
  const suffix = `.tmp-${process.pid}`;
  writeFileSync(paths.key + suffix, leaf.private, { mode: 0o600 });
  writeFileSync(paths.cert + suffix, leaf.cert);
  writeFileSync(paths.ca + suffix, ca.cert);
  renameSync(paths.key + suffix, paths.key);
  renameSync(paths.cert + suffix, paths.cert);
  renameSync(paths.ca + suffix, paths.ca);
}

/** A directory lock, so concurrent runs don't regenerate the files over each other. */
async function withLock(fn) {
  mkdirSync(certDir, { recursive: true });
  const lock = join(certDir, '.lock');
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if (error?.code !== 'EEXIST') throw error;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 60_000) {
          rmSync(lock, { recursive: true, force: true });
        }
      } catch {
        // raced with the other process removing it; retry
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${lock}`, { cause: error });
      }
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export async function ensureDevCertificates({ quiet = false } = {}) {
  if (problemWithExisting() === undefined) return paths;
  await withLock(async () => {
    const problem = problemWithExisting(); // re-check: another process may have just made them
    if (problem === undefined) return;
    if (!quiet)
      console.error(`[with-dev-ca] ${problem}; generating a new local CA and certificate`);
    await generate();
    const after = problemWithExisting();
    if (after !== undefined) throw new Error(`generated certificates are unusable: ${after}`);
  });
  return paths;
}

/**
 * NODE_EXTRA_CA_CERTS takes a single file. If the caller already set one (a corporate proxy CA,
 * say), keep trusting it by writing a bundle with both.
 */
function extraCaFile() {
  const existing = process.env.NODE_EXTRA_CA_CERTS;
  if (!existing || resolve(existing) === paths.ca || resolve(existing) === paths.bundle) {
    return paths.ca;
  }
  let previous;
  try {
    previous = readFileSync(existing, 'utf8');
  } catch {
    return paths.ca;
  }
  writeFileSync(paths.bundle, `${previous.trimEnd()}\n${readFileSync(paths.ca, 'utf8')}`);
  return paths.bundle;
}

/** `jest` → <repo>/node_modules/.bin/jest when it exists (like npx), else left to PATH. */
function resolveCommand(command) {
  if (command.includes('/') || command.includes('\\')) return command;
  const binDir = join(repoRoot, 'node_modules', '.bin');
  const candidates =
    process.platform === 'win32' ? [`${command}.cmd`, `${command}.exe`] : [command];
  for (const candidate of candidates) {
    const full = join(binDir, candidate);
    if (existsSync(full)) return full;
  }
  return command;
}

async function main(argv) {
  await ensureDevCertificates();
  if (argv.length === 0) {
    console.log(`CA:          ${paths.ca}\ncertificate: ${paths.cert}\nkey:         ${paths.key}`);
    return;
  }
  const [command, ...args] = argv;
  const binDir = join(repoRoot, 'node_modules', '.bin');
  const env = {
    ...process.env,
    NODE_EXTRA_CA_CERTS: extraCaFile(),
    PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}`,
  };
  const resolved = resolveCommand(command);
  const child = spawn(resolved, args, {
    stdio: 'inherit',
    env,
    // .cmd shims can only be started through the shell on Windows.
    shell: process.platform === 'win32' && /\.cmd$/i.test(resolved),
  });

  const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of forwarded) process.on(signal, forward);

  child.on('error', (error) => {
    console.error(`[with-dev-ca] could not start ${command}: ${error.message}`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    for (const s of forwarded) process.off(s, forward);
    if (signal) {
      // Mirror the child's fate; fall back to the shell convention 128 + signal number.
      process.exitCode = 128 + (osConstants.signals[signal] ?? 0);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(`[with-dev-ca] ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  });
}
