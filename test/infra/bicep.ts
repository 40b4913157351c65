/**
 * A small Bicep reader for tests: a parser for the subset of Bicep this repository uses and an
 * evaluator that "deploys" main.bicep in memory for given parameter values, expanding modules,
 * loops and conditions. Values that only exist at deployment time (resource ids, principal ids,
 * uniqueString...) stay symbolic, so a test can still tell *which* resource a value comes from.
 *
 * It is not a Bicep compiler (the CI workflow runs `az bicep build` for that). Syntax outside the
 * supported subset is reported as an error rather than guessed at, so a drift never passes silently.
 */

// ---------------------------------------------------------------------------------------------
// Lexer

type TokenKind = 'ident' | 'number' | 'string' | 'punct' | 'newline' | 'eof';

interface StringToken {
  /** Literal text segments and raw source of `${...}` interpolations, in order. */
  parts: ({ text: string } | { source: string; line: number })[];
}

interface Token {
  kind: TokenKind;
  value: string;
  line: number;
  start: number;
  end: number;
  str?: StringToken;
}

export class BicepSyntaxError extends Error {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = 'BicepSyntaxError';
  }
}

const PUNCTUATION = [
  '??',
  '==',
  '!=',
  '=~',
  '!~',
  '<=',
  '>=',
  '&&',
  '||',
  '=>',
  '.?',
  '::',
  '{',
  '}',
  '[',
  ']',
  '(',
  ')',
  ',',
  ':',
  '.',
  '=',
  '?',
  '!',
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
  '@',
  '|',
];

function lex(file: string, src: string, lineOffset = 0): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1 + lineOffset;
  const err = (message: string): never => {
    throw new BicepSyntaxError(file, line, message);
  };
  while (i < src.length) {
    const c = src[i] as string;
    if (c === '\n') {
      tokens.push({ kind: 'newline', value: '\n', line, start: i, end: i + 1 });
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (src.startsWith('//', i)) {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (src.startsWith('/*', i)) {
      const close = src.indexOf('*/', i + 2);
      if (close < 0) err('unterminated block comment');
      for (let k = i; k < close; k++) if (src[k] === '\n') line++;
      i = close + 2;
      continue;
    }
    if (src.startsWith("'''", i)) {
      const close = src.indexOf("'''", i + 3);
      if (close < 0) err('unterminated multi-line string');
      let text = src.slice(i + 3, close);
      if (text.startsWith('\r\n')) text = text.slice(2);
      else if (text.startsWith('\n')) text = text.slice(1);
      const startLine = line;
      for (let k = i; k < close; k++) if (src[k] === '\n') line++;
      tokens.push({
        kind: 'string',
        value: text,
        line: startLine,
        start: i,
        end: close + 3,
        str: { parts: [{ text }] },
      });
      i = close + 3;
      continue;
    }
    if (c === "'") {
      const start = i;
      const startLine = line;
      const parts: StringToken['parts'] = [];
      let text = '';
      i++;
      for (;;) {
        if (i >= src.length) err('unterminated string');
        const ch = src[i] as string;
        if (ch === '\n') err('newline in string (use a multi-line string)');
        if (ch === "'") {
          i++;
          break;
        }
        if (ch === '\\') {
          const next = src[i + 1];
          const escapes: Record<string, string> = {
            "'": "'",
            '\\': '\\',
            n: '\n',
            r: '\r',
            t: '\t',
            $: '$',
          };
          if (next !== undefined && next in escapes) {
            text += escapes[next];
            i += 2;
            continue;
          }
          if (next === 'u' && src[i + 2] === '{') {
            const close = src.indexOf('}', i);
            text += String.fromCodePoint(parseInt(src.slice(i + 3, close), 16));
            i = close + 1;
            continue;
          }
          err(`unknown escape \\${String(next)}`);
        }
        if (ch === '$' && src[i + 1] === '{') {
          if (text !== '') parts.push({ text });
          text = '';
          // Find the matching brace, skipping nested strings and braces.
          let depth = 1;
          let k = i + 2;
          while (depth > 0) {
            if (k >= src.length) err('unterminated interpolation');
            const d = src[k] as string;
            if (d === "'") {
              k++;
              while (k < src.length && src[k] !== "'") k += src[k] === '\\' ? 2 : 1;
            } else if (d === '{') depth++;
            else if (d === '}') depth--;
            k++;
          }
          parts.push({ source: src.slice(i + 2, k - 1), line });
          i = k;
          continue;
        }
        text += ch;
        i++;
      }
      if (text !== '' || parts.length === 0) parts.push({ text });
      tokens.push({
        kind: 'string',
        value: src.slice(start, i),
        line: startLine,
        start,
        end: i,
        str: { parts },
      });
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(src.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'number', value: m[0], line, start: i, end: i + m[0].length });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'ident', value: m[0], line, start: i, end: i + m[0].length });
      i += m[0].length;
      continue;
    }
    const punct = PUNCTUATION.find((p) => src.startsWith(p, i));
    if (punct === undefined) err(`unexpected character ${JSON.stringify(c)}`);
    tokens.push({
      kind: 'punct',
      value: punct as string,
      line,
      start: i,
      end: i + (punct as string).length,
    });
    i += (punct as string).length;
  }
  tokens.push({ kind: 'eof', value: '', line, start: src.length, end: src.length });
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// AST

export type Expr =
  | { k: 'str'; parts: (string | Expr)[]; line: number }
  | { k: 'num'; value: number; line: number }
  | { k: 'bool'; value: boolean; line: number }
  | { k: 'null'; line: number }
  | { k: 'id'; name: string; line: number }
  | { k: 'obj'; props: ObjProp[]; line: number }
  | { k: 'arr'; items: Expr[]; line: number }
  | { k: 'for'; loop: Loop; condition?: Expr; body: Expr; line: number }
  | { k: 'member'; obj: Expr; name: string; safe: boolean; line: number }
  | { k: 'index'; obj: Expr; index: Expr; safe: boolean; line: number }
  | { k: 'call'; ns?: string; name: string; args: Expr[]; line: number }
  | { k: 'unary'; op: string; operand: Expr; line: number }
  | { k: 'bin'; op: string; left: Expr; right: Expr; line: number }
  | { k: 'cond'; test: Expr; then: Expr; else: Expr; line: number }
  | { k: 'lambda'; params: string[]; body: Expr; line: number };

export interface ObjProp {
  key: string | Expr;
  value: Expr;
  line: number;
}

export interface Loop {
  item: string;
  index?: string;
  iterable: Expr;
}

export interface Decorator {
  name: string;
  args: Expr[];
}

interface DeclBase {
  /** Source range of the declaration including its decorators (for in-memory edits in tests). */
  start: number;
  end: number;
  line: number;
  decorators: Decorator[];
}

export interface ParamDecl extends DeclBase {
  kind: 'param';
  name: string;
  type: string;
  defaultValue?: Expr;
}

export interface VarDecl extends DeclBase {
  kind: 'var';
  name: string;
  value: Expr;
  /** The value's source text. */
  source: string;
}

/** `= {...}`, `= if (c) {...}`, `= [for x in xs: {...}]` or `= [for x in xs: if (c) {...}]`. */
export interface DeclBody {
  loop?: Loop;
  condition?: Expr;
  body: Extract<Expr, { k: 'obj' }>;
}

export interface ResourceDecl extends DeclBase, DeclBody {
  kind: 'resource';
  symbol: string;
  type: string;
  apiVersion: string;
  existing: boolean;
}

export interface ModuleDecl extends DeclBase, DeclBody {
  kind: 'module';
  symbol: string;
  path: string;
}

export interface OutputDecl extends DeclBase {
  kind: 'output';
  name: string;
  type: string;
  value: Expr;
}

export interface ParsedFile {
  path: string;
  source: string;
  targetScope?: string;
  extensions: string[];
  params: ParamDecl[];
  vars: VarDecl[];
  resources: ResourceDecl[];
  modules: ModuleDecl[];
  outputs: OutputDecl[];
}

// ---------------------------------------------------------------------------------------------
// Parser

class Parser {
  private pos = 0;
  /** 'nl': newlines separate items (file, object, array); 'ws': newlines are whitespace (parens). */
  private readonly context: ('nl' | 'ws')[] = ['nl'];

  constructor(
    private readonly file: string,
    private readonly src: string,
    private readonly tokens: Token[],
  ) {}

  private err(message: string, token = this.peek()): never {
    throw new BicepSyntaxError(this.file, token.line, message);
  }

  private peek(): Token {
    if (this.context[this.context.length - 1] === 'ws') {
      while (this.tokens[this.pos]?.kind === 'newline') this.pos++;
    }
    return this.tokens[this.pos] as Token;
  }

  private peekAt(offset: number): Token {
    return this.tokens[Math.min(this.pos + offset, this.tokens.length - 1)] as Token;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'eof') this.pos++;
    return token;
  }

  private is(value: string, token = this.peek()): boolean {
    return (token.kind === 'punct' || token.kind === 'ident') && token.value === value;
  }

  private expect(value: string): Token {
    const token = this.next();
    if (!this.is(value, token)) this.err(`expected "${value}", found "${token.value}"`, token);
    return token;
  }

  private expectIdent(): string {
    const token = this.next();
    if (token.kind !== 'ident') this.err(`expected a name, found "${token.value}"`, token);
    return token.value;
  }

  private skipNewlines(): void {
    while (this.tokens[this.pos]?.kind === 'newline') this.pos++;
  }

  private endOfStatement(): void {
    const token = this.tokens[this.pos] as Token;
    if (token.kind !== 'newline' && token.kind !== 'eof') {
      this.err(`unexpected "${token.value}" after the end of a statement`, token);
    }
  }

  parseFile(): ParsedFile {
    const file: ParsedFile = {
      path: this.file,
      source: this.src,
      extensions: [],
      params: [],
      vars: [],
      resources: [],
      modules: [],
      outputs: [],
    };
    let decorators: Decorator[] = [];
    let declStart: number | undefined;
    for (;;) {
      this.skipNewlines();
      const token = this.peek();
      if (token.kind === 'eof') break;
      const start = declStart ?? token.start;
      if (this.is('@')) {
        declStart = start;
        this.next();
        let name = this.expectIdent();
        if (this.is('.')) {
          this.next();
          name = this.expectIdent();
        }
        const args = this.is('(') ? this.parseArgs() : [];
        decorators.push({ name, args });
        continue;
      }
      if (token.kind !== 'ident') this.err(`unexpected "${token.value}"`);
      const keyword = this.next().value;
      const base = () => ({
        start,
        end: this.tokens[this.pos - 1]?.end ?? start,
        line: token.line,
        decorators,
      });
      switch (keyword) {
        case 'targetScope': {
          this.expect('=');
          const value = this.parseExpr();
          if (value.k !== 'str' || typeof value.parts[0] !== 'string')
            this.err('targetScope must be a string');
          file.targetScope = value.parts[0];
          break;
        }
        case 'extension': {
          file.extensions.push(this.expectIdent());
          while (this.peek().kind !== 'newline' && this.peek().kind !== 'eof') this.next();
          break;
        }
        case 'metadata': {
          this.expectIdent();
          this.expect('=');
          this.parseExpr();
          break;
        }
        case 'param': {
          const name = this.expectIdent();
          const type = this.parseTypeText();
          let defaultValue: Expr | undefined;
          if (this.is('=')) {
            this.next();
            defaultValue = this.parseExpr();
          }
          file.params.push({
            kind: 'param',
            name,
            type,
            ...(defaultValue ? { defaultValue } : {}),
            ...base(),
          });
          break;
        }
        case 'var': {
          const name = this.expectIdent();
          this.expect('=');
          const from = this.peek().start;
          const value = this.parseExpr();
          const to = this.tokens[this.pos - 1]?.end ?? from;
          file.vars.push({ kind: 'var', name, value, source: this.src.slice(from, to), ...base() });
          break;
        }
        case 'resource': {
          const symbol = this.expectIdent();
          const typeToken = this.next();
          if (typeToken.kind !== 'string') this.err('expected the resource type string', typeToken);
          const typeText = this.literalString(typeToken);
          const at = typeText.lastIndexOf('@');
          if (at < 0) this.err(`resource type "${typeText}" has no API version`, typeToken);
          let existing = false;
          if (this.is('existing')) {
            this.next();
            existing = true;
          }
          this.expect('=');
          const body = this.parseDeclBody();
          file.resources.push({
            kind: 'resource',
            symbol,
            type: typeText.slice(0, at),
            apiVersion: typeText.slice(at + 1),
            existing,
            ...body,
            ...base(),
          });
          break;
        }
        case 'module': {
          const symbol = this.expectIdent();
          const pathToken = this.next();
          if (pathToken.kind !== 'string') this.err('expected the module path string', pathToken);
          this.expect('=');
          const body = this.parseDeclBody();
          file.modules.push({
            kind: 'module',
            symbol,
            path: this.literalString(pathToken),
            ...body,
            ...base(),
          });
          break;
        }
        case 'output': {
          const name = this.expectIdent();
          const type = this.parseTypeText();
          this.expect('=');
          const value = this.parseExpr();
          file.outputs.push({ kind: 'output', name, type, value, ...base() });
          break;
        }
        default:
          this.err(`"${keyword}" declarations are not supported by the test parser`, token);
      }
      this.endOfStatement();
      decorators = [];
      declStart = undefined;
    }
    return file;
  }

  private literalString(token: Token): string {
    const parts = token.str?.parts ?? [];
    if (parts.length !== 1 || !('text' in (parts[0] as object)))
      this.err('expected a plain string', token);
    return (parts[0] as { text: string }).text;
  }

  /** The type of a param or output, as text (`string`, `int`, `'a' | 'b'`, `resource 'x@y'`...). */
  private parseTypeText(): string {
    const words: string[] = [];
    while (!this.is('=') && this.peek().kind !== 'newline' && this.peek().kind !== 'eof') {
      words.push(this.next().value);
    }
    if (words.length === 0) this.err('missing type');
    return words.join(' ');
  }

  private parseDeclBody(): DeclBody {
    if (this.is('if')) {
      this.next();
      const condition = this.parseParenthesized();
      return { condition, body: this.parseObjectBody() };
    }
    if (this.is('[')) {
      this.next();
      this.context.push('nl');
      this.skipNewlines();
      if (!this.is('for')) this.err('expected "for"');
      return this.parseLoop(() => this.parseObjectBody());
    }
    return { body: this.parseObjectBody() };
  }

  private parseObjectBody(): Extract<Expr, { k: 'obj' }> {
    if (!this.is('{')) this.err('expected "{"');
    return this.parsePrimary() as Extract<Expr, { k: 'obj' }>;
  }

  private parseParenthesized(): Expr {
    this.expect('(');
    this.context.push('ws');
    const e = this.parseExpr();
    this.expect(')');
    this.context.pop();
    return e;
  }

  /**
   * The rest of `[for x in xs: (if (cond))? body]`, from `for` to the closing bracket (the caller
   * has consumed `[` and pushed the newline context).
   */
  private parseLoop<T>(parseBody: () => T): { loop: Loop; condition?: Expr; body: T } {
    const loop = this.parseLoopHeader();
    this.skipNewlines();
    let condition: Expr | undefined;
    if (this.is('if')) {
      this.next();
      condition = this.parseParenthesized();
    }
    const body = parseBody();
    this.skipNewlines();
    this.context.pop();
    this.expect(']');
    return { loop, ...(condition ? { condition } : {}), body };
  }

  /** After `for`: `x in xs:` or `(x, i) in xs:`. */
  private parseLoopHeader(): Loop {
    this.expect('for');
    let item: string;
    let index: string | undefined;
    if (this.is('(')) {
      this.next();
      item = this.expectIdent();
      this.expect(',');
      index = this.expectIdent();
      this.expect(')');
    } else {
      item = this.expectIdent();
    }
    this.expect('in');
    this.context.push('ws');
    const iterable = this.parseExpr();
    this.context.pop();
    this.expect(':');
    return { item, ...(index ? { index } : {}), iterable };
  }

  private parseArgs(): Expr[] {
    this.expect('(');
    this.context.push('ws');
    const args: Expr[] = [];
    while (!this.is(')')) {
      args.push(this.parseExpr());
      if (!this.is(')')) this.expect(',');
    }
    this.next();
    this.context.pop();
    return args;
  }

  parseExpr(): Expr {
    const test = this.parseBinary(0);
    if (this.is('?')) {
      this.next();
      const then = this.parseExpr();
      this.expect(':');
      const otherwise = this.parseExpr();
      return { k: 'cond', test, then, else: otherwise, line: test.line };
    }
    return test;
  }

  private static readonly LEVELS: string[][] = [
    ['??'],
    ['||'],
    ['&&'],
    ['==', '!=', '=~', '!~'],
    ['<', '<=', '>', '>='],
    ['+', '-'],
    ['*', '/', '%'],
  ];

  private parseBinary(level: number): Expr {
    const ops = Parser.LEVELS[level];
    if (ops === undefined) return this.parseUnary();
    let left = this.parseBinary(level + 1);
    for (;;) {
      const token = this.peek();
      if (token.kind !== 'punct' || !ops.includes(token.value)) return left;
      this.next();
      const right = this.parseBinary(level + 1);
      left = { k: 'bin', op: token.value, left, right, line: token.line };
    }
  }

  private parseUnary(): Expr {
    const token = this.peek();
    if (this.is('!') || this.is('-')) {
      this.next();
      return { k: 'unary', op: token.value, operand: this.parseUnary(), line: token.line };
    }
    return this.parsePostfix();
  }

  private parsePostfix(): Expr {
    let e = this.parsePrimary();
    for (;;) {
      const token = this.peek();
      if (this.is('.') || this.is('.?')) {
        this.next();
        const name = this.expectIdent();
        if (this.is('(') && e.k === 'id') {
          e = { k: 'call', ns: e.name, name, args: this.parseArgs(), line: token.line };
        } else {
          e = { k: 'member', obj: e, name, safe: token.value === '.?', line: token.line };
        }
      } else if (this.is('[')) {
        this.next();
        this.context.push('ws');
        const safe = this.is('?');
        if (safe) this.next();
        const index = this.parseExpr();
        this.expect(']');
        this.context.pop();
        e = { k: 'index', obj: e, index, safe, line: token.line };
      } else if (this.is('(') && e.k === 'id') {
        e = { k: 'call', name: e.name, args: this.parseArgs(), line: token.line };
      } else {
        return e;
      }
    }
  }

  private parseInterpolated(token: Token): Expr {
    const parts: (string | Expr)[] = [];
    for (const part of token.str?.parts ?? []) {
      if ('text' in part) {
        parts.push(part.text);
      } else {
        const inner = new Parser(
          this.file,
          part.source,
          lex(this.file, part.source, part.line - 1),
        );
        inner.context.push('ws');
        const e = inner.parseExpr();
        if (inner.peek().kind !== 'eof') inner.err('unexpected text in interpolation');
        parts.push(e);
      }
    }
    return { k: 'str', parts, line: token.line };
  }

  private parsePrimary(): Expr {
    const token = this.peek();
    if (token.kind === 'string') {
      this.next();
      return this.parseInterpolated(token);
    }
    if (token.kind === 'number') {
      this.next();
      return { k: 'num', value: Number(token.value), line: token.line };
    }
    if (token.kind === 'ident') {
      this.next();
      if (token.value === 'true' || token.value === 'false') {
        return { k: 'bool', value: token.value === 'true', line: token.line };
      }
      if (token.value === 'null') return { k: 'null', line: token.line };
      if (this.is('=>')) {
        this.next();
        return { k: 'lambda', params: [token.value], body: this.parseExpr(), line: token.line };
      }
      return { k: 'id', name: token.value, line: token.line };
    }
    if (this.is('(')) {
      // `(a, b) => body` or a parenthesized expression.
      let k = 1;
      const names: string[] = [];
      let lambda = false;
      for (;;) {
        const t = this.peekAt(k);
        if (t.kind === 'ident') {
          names.push(t.value);
          const sep = this.peekAt(k + 1);
          if (this.is(',', sep)) {
            k += 2;
            continue;
          }
          if (this.is(')', sep) && this.is('=>', this.peekAt(k + 2))) {
            lambda = true;
            k += 3;
          }
        } else if (this.is(')', t) && this.is('=>', this.peekAt(k + 1))) {
          lambda = true;
          k += 2;
        }
        break;
      }
      if (lambda) {
        this.pos += k;
        return { k: 'lambda', params: names, body: this.parseExpr(), line: token.line };
      }
      return this.parseParenthesized();
    }
    if (this.is('{')) {
      this.next();
      this.context.push('nl');
      const props: ObjProp[] = [];
      for (;;) {
        this.skipNewlines();
        while (this.is(',')) {
          this.next();
          this.skipNewlines();
        }
        if (this.is('}')) break;
        const keyToken = this.next();
        let key: string | Expr;
        if (keyToken.kind === 'ident') {
          if ((keyToken.value === 'resource' || keyToken.value === 'module') && !this.is(':')) {
            this.err(
              'nested resource declarations are not supported by the test parser: declare them at top level with `parent:`',
              keyToken,
            );
          }
          key = keyToken.value;
        } else if (keyToken.kind === 'string') {
          const parsed = this.parseInterpolated(keyToken);
          key =
            parsed.k === 'str' && parsed.parts.length === 1 && typeof parsed.parts[0] === 'string'
              ? parsed.parts[0]
              : parsed;
        } else {
          this.err(`expected a property name, found "${keyToken.value}"`, keyToken);
        }
        this.expect(':');
        this.context.push('nl');
        const value = this.parseExpr();
        this.context.pop();
        props.push({ key, value, line: keyToken.line });
        const after = this.tokens[this.pos] as Token;
        if (after.kind !== 'newline' && !this.is(',', after) && !this.is('}', after)) {
          this.err(`expected a new line, "," or "}" after property, found "${after.value}"`, after);
        }
      }
      this.context.pop();
      this.expect('}');
      return { k: 'obj', props, line: token.line };
    }
    if (this.is('[')) {
      this.next();
      this.context.push('nl');
      this.skipNewlines();
      if (this.is('for')) {
        return { k: 'for', ...this.parseLoop(() => this.parseExpr()), line: token.line };
      }
      const items: Expr[] = [];
      for (;;) {
        this.skipNewlines();
        while (this.is(',')) {
          this.next();
          this.skipNewlines();
        }
        if (this.is(']')) break;
        items.push(this.parseExpr());
        const after = this.tokens[this.pos] as Token;
        if (after.kind !== 'newline' && !this.is(',', after) && !this.is(']', after)) {
          this.err(
            `expected a new line, "," or "]" after array item, found "${after.value}"`,
            after,
          );
        }
      }
      this.context.pop();
      this.expect(']');
      return { k: 'arr', items, line: token.line };
    }
    return this.err(`unexpected "${token.value}"`);
  }
}

export function parseBicep(path: string, source: string): ParsedFile {
  return new Parser(path, source, lex(path, source)).parseFile();
}

/** Bicep source with comments removed (strings kept), for text scans. */
export function stripComments(source: string): string {
  let out = '';
  let i = 0;
  while (i < source.length) {
    if (source.startsWith("'''", i)) {
      const close = source.indexOf("'''", i + 3);
      const end = close < 0 ? source.length : close + 3;
      out += source.slice(i, end);
      i = end;
    } else if (source[i] === "'") {
      let k = i + 1;
      while (k < source.length && source[k] !== "'" && source[k] !== '\n')
        k += source[k] === '\\' ? 2 : 1;
      out += source.slice(i, k + 1);
      i = k + 1;
    } else if (source.startsWith('//', i)) {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (source.startsWith('/*', i)) {
      const close = source.indexOf('*/', i + 2);
      const end = close < 0 ? source.length : close + 2;
      out += source.slice(i, end).replace(/[^\n]/g, '');
      i = end;
    } else {
      out += source[i];
      i++;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Values

export type Value = string | number | boolean | null | Value[] | { [key: string]: Value } | Sym;

export type SymDesc =
  | { t: 'param'; file: string; name: string }
  | { t: 'resource'; instance: ResourceInstance }
  | { t: 'collection'; instances: ResourceInstance[]; symbol: string }
  | { t: 'module'; instance: ModuleInstance }
  | { t: 'access'; base: Sym; path: Value[] }
  | { t: 'call'; name: string; args: Value[] }
  | { t: 'op'; op: string; args: Value[] }
  | { t: 'interp'; parts: Value[] }
  | { t: 'lambda'; expr: Extract<Expr, { k: 'lambda' }>; env: Env };

/** A value known only at deployment time, with a description of where it comes from. */
export class Sym {
  constructor(readonly d: SymDesc) {}
}

export function isSym(v: unknown): v is Sym {
  return v instanceof Sym;
}

export function isObject(v: Value | undefined): v is { [key: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Sym);
}

/** A readable, canonical rendering of a value (symbolic parts shown as expressions). */
export function show(v: Value | undefined): string {
  if (v === undefined) return 'undefined';
  if (v instanceof Sym) {
    const d = v.d;
    switch (d.t) {
      case 'param':
        return `param(${d.name})`;
      case 'resource':
        return `resource(${d.instance.type}:${show(d.instance.name)})`;
      case 'collection':
        return `resources(${d.symbol})`;
      case 'module':
        return `module(${d.instance.decl.symbol})`;
      case 'access':
        return `${show(d.base)}${d.path.map((p) => (typeof p === 'string' ? `.${p}` : `[${show(p)}]`)).join('')}`;
      case 'call':
        return `${d.name}(${d.args.map(show).join(', ')})`;
      case 'op':
        return `op${d.op}(${d.args.map(show).join(', ')})`;
      case 'interp':
        return d.parts.map((p) => (typeof p === 'string' ? p : `\${${show(p)}}`)).join('');
      case 'lambda':
        return 'lambda';
    }
  }
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  if (isObject(v)) {
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}: ${show(x)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(v);
}

export function sameValue(a: Value | undefined, b: Value | undefined): boolean {
  if (a === b) return true;
  if (a instanceof Sym && b instanceof Sym) {
    const x = a.d;
    const y = b.d;
    if (x.t !== y.t) return false;
    switch (x.t) {
      case 'param':
        return y.t === 'param' && x.file === y.file && x.name === y.name;
      case 'resource':
        return y.t === 'resource' && x.instance === y.instance;
      case 'collection':
        return (
          y.t === 'collection' &&
          x.symbol === y.symbol &&
          x.instances.every((i, n) => i === y.instances[n])
        );
      case 'module':
        return y.t === 'module' && x.instance === y.instance;
      case 'access':
        return y.t === 'access' && sameValue(x.base, y.base) && sameList(x.path, y.path);
      case 'call':
        return y.t === 'call' && x.name === y.name && sameList(x.args, y.args);
      case 'op':
        return y.t === 'op' && x.op === y.op && sameList(x.args, y.args);
      case 'interp':
        return y.t === 'interp' && sameList(x.parts, y.parts);
      case 'lambda':
        return y.t === 'lambda' && x.expr === y.expr;
    }
  }
  if (Array.isArray(a) && Array.isArray(b)) return sameList(a, b);
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && sameValue(a[k], b[k]));
  }
  return false;
}

function sameList(a: Value[], b: Value[]): boolean {
  return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
}

/** Every symbol a value is built from (for "does this come from resource X" checks). */
export function symParts(v: Value | undefined, out: Sym[] = []): Sym[] {
  if (v instanceof Sym) {
    out.push(v);
    const d = v.d;
    if (d.t === 'access') symParts(d.base, out);
    if (d.t === 'call' || d.t === 'op') d.args.forEach((a) => symParts(a, out));
    if (d.t === 'interp') d.parts.forEach((a) => symParts(a, out));
  } else if (Array.isArray(v)) {
    v.forEach((x) => symParts(x, out));
  } else if (isObject(v)) {
    Object.values(v).forEach((x) => symParts(x, out));
  }
  return out;
}

/** If v is `<resource>.<path...>`, the resource instance and the path. */
export function resourceAccess(
  v: Value | undefined,
): { instance: ResourceInstance; path: Value[] } | undefined {
  if (!(v instanceof Sym)) return undefined;
  if (v.d.t === 'resource') return { instance: v.d.instance, path: [] };
  if (v.d.t === 'access' && v.d.base.d.t === 'resource')
    return { instance: v.d.base.d.instance, path: v.d.path };
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Evaluator

export interface Env {
  file: FileEval;
  locals: ReadonlyMap<string, Value>;
}

export class BicepEvalError extends Error {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = 'BicepEvalError';
  }
}

export interface ResourceInstance {
  file: FileEval;
  decl: ResourceDecl;
  /** Loop variables of this instance. */
  locals: ReadonlyMap<string, Value>;
  type: string;
  apiVersion: string;
  existing: boolean;
  name: Value | undefined;
  /** The evaluated declaration body (name, properties, scope, parent...). */
  body: { [key: string]: Value };
  /** Condition that could not be decided statically, if any. */
  undecidedCondition?: string;
  label: string;
}

export interface ModuleInstance {
  caller: FileEval;
  decl: ModuleDecl;
  locals: ReadonlyMap<string, Value>;
  child: FileEval;
  label: string;
}

export type SourceFiles = Readonly<Record<string, string>>;

function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function joinPath(dir: string, rel: string): string {
  const parts = (dir === '' ? [] : dir.split('/')).concat(rel.split('/'));
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return out.join('/');
}

export class Deployment {
  private readonly parsed = new Map<string, ParsedFile>();
  readonly main: FileEval;

  /**
   * "Deploys" `mainPath` from `files` with the given parameter values; params without a value
   * and without a default stay symbolic.
   */
  constructor(
    readonly files: SourceFiles,
    mainPath: string,
    params: Readonly<Record<string, Value>> = {},
  ) {
    const bindings = new Map<string, () => Value>();
    for (const [name, value] of Object.entries(params)) bindings.set(name, () => value);
    this.main = new FileEval(this, this.parse(mainPath), bindings, 'main');
    for (const name of Object.keys(params)) {
      if (!this.main.file.params.some((p) => p.name === name)) {
        throw new Error(`${mainPath} has no parameter "${name}"`);
      }
    }
  }

  parse(path: string): ParsedFile {
    let parsed = this.parsed.get(path);
    if (parsed === undefined) {
      const source = this.files[path];
      if (source === undefined) throw new Error(`No such Bicep file: ${path}`);
      parsed = parseBicep(path, source);
      this.parsed.set(path, parsed);
    }
    return parsed;
  }

  /** Every resource instance the deployment creates or references, modules expanded. */
  resources(): ResourceInstance[] {
    return this.main.allResources();
  }

  modules(): ModuleInstance[] {
    return this.main.allModules();
  }
}

export class FileEval {
  private readonly varValues = new Map<string, Value>();
  private readonly varsInProgress = new Set<string>();
  private readonly resourceInstances = new Map<string, ResourceInstance[]>();
  private readonly moduleInstances = new Map<string, ModuleInstance[]>();
  private readonly outputValues = new Map<string, Value>();

  constructor(
    readonly deployment: Deployment,
    readonly file: ParsedFile,
    readonly bindings: ReadonlyMap<string, () => Value>,
    readonly label: string,
  ) {}

  private err(line: number, message: string): never {
    throw new BicepEvalError(this.file.path, line, message);
  }

  private env(locals: ReadonlyMap<string, Value> = new Map()): Env {
    return { file: this, locals };
  }

  param(name: string): Value {
    const decl = this.file.params.find((p) => p.name === name);
    if (decl === undefined) throw new Error(`${this.file.path} has no parameter ${name}`);
    const bound = this.bindings.get(name);
    if (bound !== undefined) return bound();
    if (decl.defaultValue !== undefined) return this.eval(decl.defaultValue, this.env());
    return new Sym({ t: 'param', file: this.file.path, name });
  }

  variable(name: string): Value {
    const cached = this.varValues.get(name);
    if (cached !== undefined) return cached;
    const decl = this.file.vars.find((v) => v.name === name);
    if (decl === undefined) throw new Error(`${this.file.path} has no variable ${name}`);
    if (this.varsInProgress.has(name)) this.err(decl.line, `variable ${name} refers to itself`);
    this.varsInProgress.add(name);
    const value = this.eval(decl.value, this.env());
    this.varsInProgress.delete(name);
    this.varValues.set(name, value);
    return value;
  }

  output(name: string): Value {
    const cached = this.outputValues.get(name);
    if (cached !== undefined) return cached;
    const decl = this.file.outputs.find((o) => o.name === name);
    if (decl === undefined) throw new Error(`${this.file.path} has no output ${name}`);
    const value = this.eval(decl.value, this.env());
    this.outputValues.set(name, value);
    return value;
  }

  /** Expands a declaration's loop and condition into the list of local bindings it is deployed with. */
  private expand(
    decl: DeclBody & DeclBase,
    env: Env,
  ): { locals: Map<string, Value>; undecided?: string }[] {
    const out: { locals: Map<string, Value>; undecided?: string }[] = [];
    const consider = (locals: Map<string, Value>) => {
      if (decl.condition === undefined) {
        out.push({ locals });
        return;
      }
      const c = this.eval(decl.condition, { file: this, locals });
      if (c === true) out.push({ locals });
      else if (c instanceof Sym) out.push({ locals, undecided: show(c) });
      else if (c !== false) this.err(decl.line, `condition is not a bool: ${show(c)}`);
    };
    if (decl.loop) {
      const items = this.eval(decl.loop.iterable, env);
      if (!Array.isArray(items))
        this.err(decl.line, `loop over a value not known before deployment: ${show(items)}`);
      items.forEach((item, index) => {
        const locals = new Map(env.locals);
        locals.set(decl.loop?.item as string, item);
        if (decl.loop?.index !== undefined) locals.set(decl.loop.index, index);
        consider(locals);
      });
    } else {
      consider(new Map(env.locals));
    }
    return out;
  }

  resourceInstances_(symbol: string): ResourceInstance[] {
    const cached = this.resourceInstances.get(symbol);
    if (cached) return cached;
    const decl = this.file.resources.find((r) => r.symbol === symbol);
    if (decl === undefined) throw new Error(`${this.file.path} has no resource ${symbol}`);
    const instances: ResourceInstance[] = [];
    this.resourceInstances.set(symbol, instances);
    const expansions = this.expand(decl, this.env());
    expansions.forEach(({ locals, undecided }, n) => {
      let body: { [key: string]: Value } | undefined;
      let name: Value | undefined;
      let nameDone = false;
      const evaluate = (e: Expr): Value => this.eval(e, { file: this, locals });
      const fail = (message: string): never => this.err(decl.line, message);
      const instance: ResourceInstance = {
        file: this,
        decl,
        locals,
        type: decl.type,
        apiVersion: decl.apiVersion,
        existing: decl.existing,
        label: `${this.label} ${this.file.path}#${symbol}${decl.loop ? `[${n}]` : ''}`,
        ...(undecided === undefined ? {} : { undecidedCondition: undecided }),
        get body(): { [key: string]: Value } {
          if (body === undefined) {
            const evaluated = evaluate(decl.body);
            if (!isObject(evaluated)) return fail('resource body is not an object');
            body = evaluated;
          }
          return body;
        },
        get name(): Value | undefined {
          if (!nameDone) {
            nameDone = true;
            const prop = decl.body.props.find((p) => p.key === 'name');
            name = prop === undefined ? undefined : evaluate(prop.value);
          }
          return name;
        },
      };
      instances.push(instance);
    });
    return instances;
  }

  moduleInstances_(symbol: string): ModuleInstance[] {
    const cached = this.moduleInstances.get(symbol);
    if (cached) return cached;
    const decl = this.file.modules.find((m) => m.symbol === symbol);
    if (decl === undefined) throw new Error(`${this.file.path} has no module ${symbol}`);
    const instances: ModuleInstance[] = [];
    this.moduleInstances.set(symbol, instances);
    const childPath = joinPath(dirname(this.file.path), decl.path);
    const childFile = this.deployment.parse(childPath);
    this.expand(decl, this.env()).forEach(({ locals }, n) => {
      const paramsProp = decl.body.props.find((p) => p.key === 'params');
      const bindings = new Map<string, () => Value>();
      if (paramsProp !== undefined) {
        if (paramsProp.value.k !== 'obj')
          this.err(decl.line, 'module params must be an object literal');
        for (const prop of paramsProp.value.props) {
          if (typeof prop.key !== 'string')
            this.err(prop.line, 'module parameter names must be plain');
          const key = prop.key;
          if (!childFile.params.some((p) => p.name === key)) {
            this.err(prop.line, `module ${decl.symbol} (${childPath}) has no parameter "${key}"`);
          }
          let memo: { v: Value } | undefined;
          bindings.set(key, () => {
            memo ??= { v: this.eval(prop.value, { file: this, locals }) };
            return memo.v;
          });
        }
      }
      for (const p of childFile.params) {
        if (p.defaultValue === undefined && !bindings.has(p.name)) {
          this.err(decl.line, `module ${decl.symbol} does not set required parameter "${p.name}"`);
        }
      }
      const label = `${this.label} > ${decl.symbol}${decl.loop ? `[${n}]` : ''}`;
      instances.push({
        caller: this,
        decl,
        locals,
        child: new FileEval(this.deployment, childFile, bindings, label),
        label,
      });
    });
    return instances;
  }

  allResources(): ResourceInstance[] {
    const out: ResourceInstance[] = [];
    for (const r of this.file.resources) out.push(...this.resourceInstances_(r.symbol));
    for (const m of this.file.modules) {
      for (const instance of this.moduleInstances_(m.symbol))
        out.push(...instance.child.allResources());
    }
    return out;
  }

  allModules(): ModuleInstance[] {
    const out: ModuleInstance[] = [];
    for (const m of this.file.modules) {
      for (const instance of this.moduleInstances_(m.symbol))
        out.push(instance, ...instance.child.allModules());
    }
    return out;
  }

  private lookup(name: string, env: Env, line: number): Value {
    if (env.locals.has(name)) return env.locals.get(name) as Value;
    if (this.file.params.some((p) => p.name === name)) return this.param(name);
    if (this.file.vars.some((v) => v.name === name)) return this.variable(name);
    const resource = this.file.resources.find((r) => r.symbol === name);
    if (resource) {
      const instances = this.resourceInstances_(name);
      if (resource.loop) return new Sym({ t: 'collection', instances, symbol: name });
      const instance = instances[0];
      if (instance === undefined) {
        // A conditional resource that is not deployed: references to it are symbolic.
        return new Sym({ t: 'call', name: 'notDeployed', args: [name] });
      }
      return new Sym({ t: 'resource', instance });
    }
    const mod = this.file.modules.find((m) => m.symbol === name);
    if (mod) {
      const instance = this.moduleInstances_(name)[0];
      if (instance === undefined) return new Sym({ t: 'call', name: 'notDeployed', args: [name] });
      return new Sym({ t: 'module', instance });
    }
    return this.err(line, `unknown name "${name}"`);
  }

  eval(e: Expr, env: Env): Value {
    switch (e.k) {
      case 'str': {
        const parts = e.parts.map((p) => (typeof p === 'string' ? p : this.eval(p, env)));
        // '${x}' is x itself.
        if (parts.length === 1 && parts[0] instanceof Sym) return parts[0];
        if (
          parts.every(
            (p) => typeof p === 'string' || typeof p === 'number' || typeof p === 'boolean',
          )
        ) {
          return parts.map((p) => String(p as string)).join('');
        }
        return new Sym({ t: 'interp', parts });
      }
      case 'num':
      case 'bool':
        return e.value;
      case 'null':
        return null;
      case 'id':
        return this.lookup(e.name, env, e.line);
      case 'obj': {
        const out: { [key: string]: Value } = {};
        for (const prop of e.props) {
          const key = typeof prop.key === 'string' ? prop.key : this.eval(prop.key, env);
          out[typeof key === 'string' ? key : show(key)] = this.eval(prop.value, env);
        }
        return out;
      }
      case 'arr':
        return e.items.map((item) => this.eval(item, env));
      case 'for': {
        const items = this.eval(e.loop.iterable, env);
        if (!Array.isArray(items)) return new Sym({ t: 'call', name: 'for', args: [items] });
        const out: Value[] = [];
        items.forEach((item, index) => {
          const locals = new Map(env.locals);
          locals.set(e.loop.item, item);
          if (e.loop.index !== undefined) locals.set(e.loop.index, index);
          const inner = { file: this, locals };
          if (e.condition !== undefined && this.eval(e.condition, inner) !== true) return;
          out.push(this.eval(e.body, inner));
        });
        return out;
      }
      case 'member':
        return this.member(this.eval(e.obj, env), e.name, e.safe, e.line);
      case 'index': {
        const obj = this.eval(e.obj, env);
        const index = this.eval(e.index, env);
        if (obj instanceof Sym || index instanceof Sym) {
          if (obj instanceof Sym && obj.d.t === 'collection' && typeof index === 'number') {
            const instance = obj.d.instances[index];
            if (instance) return new Sym({ t: 'resource', instance });
          }
          if (obj instanceof Sym) return this.access(obj, index);
          return new Sym({ t: 'op', op: '[]', args: [obj, index] });
        }
        if (Array.isArray(obj) && typeof index === 'number') {
          if (index < 0 || index >= obj.length) {
            if (e.safe) return null;
            this.err(e.line, `index ${index} out of range`);
          }
          return obj[index] as Value;
        }
        if (isObject(obj) && typeof index === 'string')
          return this.member(obj, index, e.safe, e.line);
        return this.err(e.line, `cannot index ${show(obj)} with ${show(index)}`);
      }
      case 'call':
        return this.call(e, env);
      case 'unary': {
        const v = this.eval(e.operand, env);
        if (v instanceof Sym) return new Sym({ t: 'op', op: e.op, args: [v] });
        if (e.op === '!') {
          if (typeof v !== 'boolean') this.err(e.line, `! applied to ${show(v)}`);
          return !v;
        }
        if (typeof v !== 'number') this.err(e.line, `- applied to ${show(v)}`);
        return -v;
      }
      case 'bin':
        return this.binary(e, env);
      case 'cond': {
        const test = this.eval(e.test, env);
        if (test === true) return this.eval(e.then, env);
        if (test === false) return this.eval(e.else, env);
        if (test instanceof Sym) {
          return new Sym({
            t: 'op',
            op: '?:',
            args: [test, this.eval(e.then, env), this.eval(e.else, env)],
          });
        }
        return this.err(e.line, `condition is not a bool: ${show(test)}`);
      }
      case 'lambda':
        return new Sym({ t: 'lambda', expr: e, env });
    }
  }

  private access(base: Sym, key: Value): Sym {
    if (base.d.t === 'access')
      return new Sym({ t: 'access', base: base.d.base, path: [...base.d.path, key] });
    return new Sym({ t: 'access', base, path: [key] });
  }

  private member(obj: Value, name: string, safe: boolean, line: number): Value {
    if (obj instanceof Sym) {
      if (obj.d.t === 'resource' && name === 'name') {
        const n = obj.d.instance.name;
        return n === undefined ? this.access(obj, name) : n;
      }
      if (obj.d.t === 'module' && name === 'outputs') {
        const child = obj.d.instance.child;
        const outputs: { [key: string]: Value } = {};
        for (const o of child.file.outputs) {
          Object.defineProperty(outputs, o.name, {
            enumerable: true,
            get: () => child.output(o.name),
          });
        }
        return outputs;
      }
      return this.access(obj, name);
    }
    if (isObject(obj)) {
      if (name in obj) return obj[name] as Value;
      if (safe) return null;
      return this.err(line, `no property "${name}" in ${show(obj)}`);
    }
    if (obj === null && safe) return null;
    return this.err(line, `cannot read "${name}" of ${show(obj)}`);
  }

  private binary(e: Extract<Expr, { k: 'bin' }>, env: Env): Value {
    const left = this.eval(e.left, env);
    if (e.op === '&&' && left === false) return false;
    if (e.op === '||' && left === true) return true;
    if (e.op === '??' && left !== null && !(left instanceof Sym)) return left;
    const right = this.eval(e.right, env);
    if (e.op === '??')
      return left === null ? right : new Sym({ t: 'op', op: '??', args: [left, right] });
    if (left instanceof Sym || right instanceof Sym) {
      if (e.op === '&&' && right === false) return false;
      if (e.op === '||' && right === true) return true;
      return new Sym({ t: 'op', op: e.op, args: [left, right] });
    }
    switch (e.op) {
      case '&&':
      case '||':
        if (typeof left !== 'boolean' || typeof right !== 'boolean')
          this.err(e.line, `${e.op} needs bools`);
        return e.op === '&&' ? left && right : left || right;
      case '==':
        return sameValue(left, right);
      case '!=':
        return !sameValue(left, right);
      case '=~':
      case '!~': {
        if (typeof left !== 'string' || typeof right !== 'string')
          this.err(e.line, `${e.op} needs strings`);
        const same = left.toLowerCase() === right.toLowerCase();
        return e.op === '=~' ? same : !same;
      }
      case '<':
      case '<=':
      case '>':
      case '>=': {
        if (typeof left !== 'number' || typeof right !== 'number')
          this.err(e.line, `${e.op} needs numbers`);
        return e.op === '<'
          ? left < right
          : e.op === '<='
            ? left <= right
            : e.op === '>'
              ? left > right
              : left >= right;
      }
      case '+':
      case '-':
      case '*':
      case '/':
      case '%': {
        if (typeof left !== 'number' || typeof right !== 'number')
          this.err(e.line, `${e.op} needs numbers`);
        if (e.op === '+') return left + right;
        if (e.op === '-') return left - right;
        if (e.op === '*') return left * right;
        if (e.op === '/') return Math.trunc(left / right);
        return left % right;
      }
    }
    return this.err(e.line, `unsupported operator ${e.op}`);
  }

  private applyLambda(fn: Value, args: Value[], line: number): Value {
    if (!(fn instanceof Sym) || fn.d.t !== 'lambda') return this.err(line, 'expected a lambda');
    const locals = new Map(fn.d.env.locals);
    fn.d.expr.params.forEach((p, i) => locals.set(p, args[i] ?? null));
    return fn.d.env.file.eval(fn.d.expr.body, { file: fn.d.env.file, locals });
  }

  private call(e: Extract<Expr, { k: 'call' }>, env: Env): Value {
    if (e.ns !== undefined && e.ns !== 'sys' && e.ns !== 'az') {
      // A method-like call on a value, e.g. `storage.listKeys()`: always deployment-time.
      const base = this.eval({ k: 'id', name: e.ns, line: e.line }, env);
      return new Sym({
        t: 'call',
        name: `${show(base)}.${e.name}`,
        args: e.args.map((a) => this.eval(a, env)),
      });
    }
    const args = e.args.map((a) => this.eval(a, env));
    const symbolic = () => new Sym({ t: 'call', name: e.name, args });
    const known = args.every((a) => !(a instanceof Sym) || a.d.t === 'lambda');
    const str = (i: number): string => {
      const a = args[i];
      if (typeof a !== 'string')
        this.err(e.line, `${e.name}: argument ${i + 1} must be a string, got ${show(a)}`);
      return a;
    };
    const num = (i: number): number => {
      const a = args[i];
      if (typeof a !== 'number')
        this.err(e.line, `${e.name}: argument ${i + 1} must be an int, got ${show(a)}`);
      return a;
    };
    const arr = (i: number): Value[] => {
      const a = args[i];
      if (!Array.isArray(a))
        this.err(e.line, `${e.name}: argument ${i + 1} must be an array, got ${show(a)}`);
      return a;
    };
    switch (e.name) {
      // Known only at deployment time.
      case 'uniqueString':
      case 'guid':
      case 'newGuid':
      case 'utcNow':
      case 'subscription':
      case 'resourceGroup':
      case 'tenant':
      case 'deployment':
      case 'environment':
      case 'deployer':
      case 'managementGroup':
      case 'subscriptionResourceId':
      case 'resourceId':
      case 'tenantResourceId':
      case 'extensionResourceId':
      case 'reference':
      case 'listKeys':
      case 'listConnectionStrings':
      case 'listAccountSas':
      case 'listServiceSas':
        return symbolic();
    }
    if (!known) return symbolic();
    switch (e.name) {
      case 'toLower':
        return str(0).toLowerCase();
      case 'toUpper':
        return str(0).toUpperCase();
      case 'trim':
        return str(0).trim();
      case 'string':
        return typeof args[0] === 'string' ? args[0] : JSON.stringify(args[0]);
      case 'int':
        return typeof args[0] === 'number' ? args[0] : parseInt(str(0), 10);
      case 'bool':
        return typeof args[0] === 'boolean' ? args[0] : str(0).toLowerCase() === 'true';
      case 'empty': {
        const a = args[0];
        if (a === null || a === '') return true;
        if (Array.isArray(a)) return a.length === 0;
        if (isObject(a)) return Object.keys(a).length === 0;
        return false;
      }
      case 'length': {
        const a = args[0];
        if (typeof a === 'string' || Array.isArray(a)) return a.length;
        if (isObject(a)) return Object.keys(a).length;
        return this.err(e.line, `length of ${show(a)}`);
      }
      case 'concat':
        if (args.every((a) => Array.isArray(a))) return (args as Value[][]).flat(1);
        return args.map((a, i) => (typeof a === 'number' ? String(a) : str(i))).join('');
      case 'union': {
        if (args.every((a) => Array.isArray(a))) {
          const out: Value[] = [];
          for (const a of args as Value[][])
            for (const x of a) if (!out.some((y) => sameValue(x, y))) out.push(x);
          return out;
        }
        const out: { [key: string]: Value } = {};
        for (const a of args) {
          if (!isObject(a)) return this.err(e.line, `union of ${show(a)}`);
          Object.assign(out, a);
        }
        return out;
      }
      case 'contains': {
        const c = args[0];
        if (typeof c === 'string') return c.includes(str(1));
        if (Array.isArray(c)) return c.some((x) => sameValue(x, args[1]));
        if (isObject(c)) return str(1) in c;
        return this.err(e.line, `contains on ${show(c)}`);
      }
      case 'startsWith':
        return str(0).toLowerCase().startsWith(str(1).toLowerCase());
      case 'endsWith':
        return str(0).toLowerCase().endsWith(str(1).toLowerCase());
      case 'split':
        return str(0).split(str(1));
      case 'join':
        return arr(0)
          .map((x) => String(x as string))
          .join(str(1));
      case 'replace':
        return str(0).split(str(1)).join(str(2));
      case 'substring':
        return str(0).substring(num(1), args.length > 2 ? num(1) + num(2) : undefined);
      case 'take': {
        const a = args[0];
        if (typeof a === 'string') return a.slice(0, num(1));
        return arr(0).slice(0, num(1));
      }
      case 'skip': {
        const a = args[0];
        if (typeof a === 'string') return a.slice(num(1));
        return arr(0).slice(num(1));
      }
      case 'first':
        return arr(0)[0] ?? null;
      case 'last':
        return arr(0)[arr(0).length - 1] ?? null;
      case 'flatten':
        return arr(0).flat(1);
      case 'filter':
        return arr(0).filter((x, i) => this.applyLambda(args[1] as Value, [x, i], e.line) === true);
      case 'map':
        return arr(0).map((x, i) => this.applyLambda(args[1] as Value, [x, i], e.line));
      case 'items': {
        const o = args[0];
        if (!isObject(o)) return this.err(e.line, `items of ${show(o)}`);
        return Object.entries(o).map(([key, value]) => ({ key, value }));
      }
      case 'format':
        return str(0).replace(/\{(\d+)\}/g, (_m, i: string) =>
          show(args[Number(i) + 1]).replace(/^"|"$/g, ''),
        );
    }
    return symbolic();
  }
}
