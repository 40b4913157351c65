/**
 * Builds the deployment package: what `azd deploy` ships to the function app, and nothing else.
 *
 *   npm run build                         tsc, then this: write dist/deploy/ (azd runs `build` only)
 *   node dev/package-app.mjs --out DIR    write the package to DIR instead (tests)
 *   ... --entry FILE.ts                   package that module instead of functions/*.ts (the
 *                                         bench's floors: the required SDKs alone, bundled alike)
 *
 * dist/deploy/ holds app.js (every functions/*.ts in one esbuild bundle, its npm dependencies
 * included), lazy/ (one bundle per SDK the app loads on first use), main.js (a few lines that turn
 * on Node's compile cache and load app.js), host.json and a package.json whose "main" is main.js
 * and which has no dependencies, so the package needs no node_modules and no remote build. One
 * bundle rather than one per function: the functions share one runtime (clients, token cache, Graph
 * pacing) as they do unbundled. @azure/functions-core stays external: the Functions host supplies
 * it.
 *
 * What loads lazily is decided by the code, not by a list here: our sources import packages, and a
 * `require('package')` in them is a deliberate load on first use (the Service Bus and Blob SDKs,
 * see their adapters). Each such package becomes lazy/<name>.js and app.js requires that file when
 * the code first asks for it, so a start never reads or compiles bytes it does not run (about a
 * third of the code, 85 ms of every first start: docs/benchmarks.md). Each lazy bundle holds its
 * own copy of what it shares with the rest, as the CommonJS builds those requires pick did already.
 *
 * Cold start (measured by `npm run bench`, see docs/benchmarks.md): the bundle is minified (V8
 * parses less than half the bytes). Node 22's compile cache lives in the temp
 * directory, the only writable place in Azure (the package is mounted read-only): the first start
 * of an instance writes it, every later start of the process there skips compiling app.js.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outIndex = process.argv.indexOf('--out');
const out = outIndex > 0 ? resolve(process.argv[outIndex + 1] ?? '') : join(root, 'dist', 'deploy');

const entryIndex = process.argv.indexOf('--entry');
/** Module paths relative to the root, without .ts: what app.js requires, in this order. */
const entries =
  entryIndex > 0
    ? [(process.argv[entryIndex + 1] ?? '').replace(/\.ts$/, '')]
    : readdirSync(join(root, 'functions'))
        .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
        .sort()
        .map((file) => `functions/${file.replace(/\.ts$/, '')}`);
if (entries.length === 0 || entries[0] === '') throw new Error('nothing to package');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  // Azure runs Node 22; the package test loads the bundle on the machines' Node 20.
  target: 'node20',
  external: ['@azure/functions-core'],
  minify: true,
  // The SDKs' error classes keep their names (code compares error.name).
  keepNames: true,
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
};

/** `@azure/service-bus` -> `lazy/azure-service-bus.js`, relative to app.js. */
const lazyFile = (name) => `lazy/${name.replace(/^@/, '').replace(/\//g, '-')}.js`;
const lazyPackages = new Set();
const splitLazyRequires = {
  name: 'split-lazy-requires',
  setup(builder) {
    builder.onResolve({ filter: /^[^./]/ }, (args) => {
      const ours = !args.importer.includes('node_modules') && args.importer.startsWith(root);
      if (args.kind !== 'require-call' || !ours || args.path === '@azure/functions-core') {
        return undefined;
      }
      lazyPackages.add(args.path);
      return { path: `./${lazyFile(args.path)}`, external: true };
    });
  },
};

const result = await build({
  ...common,
  stdin: {
    contents: entries.map((entry) => `require('./${entry}');`).join('\n'),
    resolveDir: root,
    sourcefile: 'functions.ts',
    loader: 'ts',
  },
  outfile: join(out, 'app.js'),
  plugins: [splitLazyRequires],
  // esbuild's default module choice, on purpose: forcing the packages' ES module builds (the
  // "import" condition for require() too) saved bytes but broke @azure/storage-common, whose ES
  // build calls createRequire(import.meta.url), empty in a CommonJS bundle (seen in the bench's
  // cold event: the immutable log's first append failed).
});
const lazyResults = await Promise.all(
  [...lazyPackages].sort().map((name) =>
    build({
      ...common,
      stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root },
      outfile: join(out, lazyFile(name)),
    }),
  ),
);

// The entry the host loads. enableCompileCache exists from Node 22.1. It gets a directory it can
// write, or nothing: the app then loads uncached. The directory is made here without `recursive`:
// Node 22.23's recursive mkdir (its own, and enableCompileCache's) never returns for a path under
// /proc, seen here, and a start that hangs is worse than a slow one.
const compileCacheDir = 'entra-offboarding-compile-cache';
writeFileSync(
  join(out, 'main.js'),
  `'use strict';
// Node's compile cache in the temp directory, the one writable place in Azure (the package is
// mounted read-only): the first start of an instance writes it, later starts skip compiling app.js.
const { enableCompileCache } = require('node:module');
if (enableCompileCache) {
  const fs = require('node:fs');
  const dir = require('node:path').join(require('node:os').tmpdir(), ${JSON.stringify(compileCacheDir)});
  try {
    try {
      fs.mkdirSync(dir);
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    fs.accessSync(dir, fs.constants.W_OK);
    enableCompileCache(dir);
  } catch {
    // No usable temp directory: load without the cache.
  }
}
module.exports = require('./app.js');
`,
);

const app = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const manifest = {
  name: app.name,
  version: app.version,
  private: true,
  description: app.description,
  license: app.license,
  main: 'main.js',
  engines: app.engines,
};
writeFileSync(join(out, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
copyFileSync(join(root, 'host.json'), join(out, 'host.json'));

const kib = (built) =>
  `${(Object.values(built.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0) / 1024).toFixed(0)} KiB`;
const parts = [
  `app.js (${kib(result)})`,
  ...[...lazyPackages].sort().map((name, i) => `${lazyFile(name)} (${kib(lazyResults[i])})`),
  'main.js',
  'host.json',
  'package.json',
];
process.stdout.write(`Packaged ${entries.join(', ')} into ${out}: ${parts.join(', ')}\n`);
