/**
 * Builds the deployment package: what `azd deploy` ships to the function app, and nothing else.
 *
 *   npm run package                       write dist/deploy/ (azd runs this script itself)
 *   node dev/package-app.mjs --out DIR    write the package to DIR instead (tests)
 *
 * dist/deploy/ holds main.js (every functions/*.ts in one esbuild bundle, its npm dependencies
 * included), host.json and a package.json whose "main" is main.js and which has no dependencies,
 * so the package needs no node_modules and no remote build. One bundle rather than one per
 * function: the functions share one runtime (clients, token cache, Graph pacing) as they do
 * unbundled. @azure/functions-core stays external: the Functions host supplies it.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outIndex = process.argv.indexOf('--out');
const out = outIndex > 0 ? resolve(process.argv[outIndex + 1] ?? '') : join(root, 'dist', 'deploy');

const entries = readdirSync(join(root, 'functions'))
  .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
  .sort();
if (entries.length === 0) throw new Error('no functions/*.ts to package');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  stdin: {
    contents: entries
      .map((file) => `require('./functions/${file.replace(/\.ts$/, '')}');`)
      .join('\n'),
    resolveDir: root,
    sourcefile: 'functions.ts',
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  // Azure runs Node 22; the package test loads the bundle on the machines' Node 20.
  target: 'node20',
  external: ['@azure/functions-core'],
  outfile: join(out, 'main.js'),
  keepNames: true,
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
});

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

const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
process.stdout.write(
  `Packaged ${entries.length} function file(s) into ${out}: main.js (${(bytes / 1024).toFixed(0)} KiB), host.json, package.json\n`,
);
