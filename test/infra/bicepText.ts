/**
 * Line-level reading of the Bicep in infra/ for the structural checks in infra.test.ts. This is not
 * a Bicep parser (the official compiler runs in CI: dev/bicep.sh check): it finds declarations by
 * their header line and takes the brace-balanced block after it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export type InfraFiles = Record<string, string>;

/** Every file under infra/ plus azure.yaml and .funcignore, keyed by repository-relative path. */
export function loadInfraFiles(root: string): InfraFiles {
  const files: InfraFiles = {};
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files[relative(root, path)] = readFileSync(path, 'utf8');
    }
  };
  walk(join(root, 'infra'));
  for (const extra of ['azure.yaml', '.funcignore']) {
    files[extra] = readFileSync(join(root, extra), 'utf8');
  }
  return files;
}

/** The text without `//` comments (quotes respected, so URLs in strings survive). */
export function stripComments(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      let quoted = false;
      for (let i = 0; i < line.length; i++) {
        const c = line[i];
        if (c === '\\') i++;
        else if (c === "'") quoted = !quoted;
        else if (!quoted && c === '/' && line[i + 1] === '/') return line.slice(0, i).trimEnd();
      }
      return line;
    })
    .join('\n');
}

/** The brace-balanced block that starts at the first `{` at or after `from`. */
export function blockAt(text: string, from: number): string {
  const open = text.indexOf('{', from);
  if (open < 0) throw new Error(`no block after offset ${from}`);
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return text.slice(open, i + 1);
  }
  throw new Error(`unbalanced block at offset ${open}`);
}

export interface Declaration {
  file: string;
  symbol: string;
  /** Resource type without the API version, or the module path. */
  type: string;
  /** Up to the first `{`: the loop (`for x in y:`) and condition (`if (...)`) are in here. */
  header: string;
  body: string;
}

const RESOURCE = /^(resource|module) (\w+) '([^'@]+)(?:@[^']*)?'( existing)? = (.*)$/gm;

export function declarations(files: InfraFiles): Declaration[] {
  return Object.entries(files)
    .filter(([path]) => path.endsWith('.bicep'))
    .flatMap(([file, source]) => {
      const text = stripComments(source);
      return [...text.matchAll(RESOURCE)].map((m) => {
        const start = m.index ?? 0;
        return {
          file,
          symbol: m[2] as string,
          type: m[3] as string,
          header: text.slice(start, text.indexOf('{', start) + 1),
          body: blockAt(text, start),
        };
      });
    });
}

/** `key: value` of the top-level lines of a block (one level in). */
export function properties(block: string): Record<string, string> {
  const result: Record<string, string> = {};
  let depth = 0;
  for (const line of block.split('\n')) {
    const m = /^\s*'?([\w$.-]+)'?:\s*(.*)$/.exec(line);
    if (depth === 1 && m) result[m[1] as string] = (m[2] as string).trim();
    depth += (line.match(/[{[]/g) ?? []).length - (line.match(/[}\]]/g) ?? []).length;
  }
  return result;
}

/** The value of a `param name type = value` default, as text. */
export function paramDefault(text: string, name: string): string | undefined {
  return new RegExp(`^param ${name} \\w+ = (.+)$`, 'm').exec(text)?.[1]?.trim();
}

/** Replaces `from` (exactly one occurrence) in one file: a copy of the files with drift injected. */
export function inject(
  files: InfraFiles,
  path: string,
  from: string | RegExp,
  to: string,
): InfraFiles {
  const text = files[path];
  if (text === undefined) throw new Error(`no file ${path}`);
  const pattern =
    typeof from === 'string'
      ? new RegExp(from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g')
      : new RegExp(from.source, from.flags.includes('g') ? from.flags : `${from.flags}g`);
  const count = (text.match(pattern) ?? []).length;
  if (count !== 1) throw new Error(`${String(from)} occurs ${count} times in ${path}, not once`);
  return { ...files, [path]: text.replace(pattern, to) };
}
