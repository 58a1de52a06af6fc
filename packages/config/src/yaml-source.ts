import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { ConfigError } from './config-error.js';
import { parseByteSize } from './byte-size.js';
import { parseGoDuration } from './duration.js';
import { closestKey } from './closest-key.js';

/** YAML 1.1 booleans, which Litestream's YAML library (yaml.v2) accepts. */
const BOOL_WORDS = new Map<string, boolean>([
  ...['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON'].map((w) => [w, true] as const),
  ...['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF'].map((w) => [w, false] as const),
]);

/** A key of a YAML mapping with its value, after aliases and `<<` merges are resolved. */
interface Entry {
  name: string;
  keyLine: number | undefined;
  value: unknown;
  valueLine: number | undefined;
}

/** Returns a readable name for the kind of a YAML node. */
function kindOf(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || v === undefined) return 'nothing';
    if (typeof v === 'string') return `'${v}'`;
    return `${typeof v} ${node.source ?? String(v)}`;
  }
  return 'an unexpected value';
}

/** True for an absent value: a missing node or a null scalar (`key:` or `key: ~`). */
function isNull(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && (node.value === null || node.value === undefined));
}

/**
 * Reads a parsed config document that knows the file line of every node, so each problem is reported as
 * a ConfigError naming the file, line and dotted key.
 */
export class YamlSource {
  readonly root: unknown;
  readonly file: string | undefined;
  readonly #doc: Document;
  readonly #lines: LineCounter;
  readonly #lineMap: number[] | undefined;

  constructor(text: string, options: { file?: string | undefined; lineMap?: number[] | undefined } = {}) {
    this.file = options.file;
    this.#lineMap = options.lineMap;
    this.#lines = new LineCounter();
    this.#doc = parseDocument(text, { lineCounter: this.#lines, prettyErrors: false, merge: true, uniqueKeys: true });
    const err = this.#doc.errors[0];
    if (err) {
      const line = this.lineAt(err.pos[0]);
      this.#throw(undefined, line, `invalid YAML: ${err.message}`, 'Check the indentation, quoting and colons around that line.');
    }
    this.root = this.deref(this.#doc.contents, '', undefined);
  }

  /** Returns the 1-based line of the original text at `offset` of the parsed text. */
  lineAt(offset: number | undefined): number | undefined {
    if (offset === undefined) return undefined;
    const line = this.#lines.linePos(offset).line;
    return this.#lineMap ? (this.#lineMap[line - 1] ?? line) : line;
  }

  /** Returns the line where `node` starts. */
  lineOf(node: unknown): number | undefined {
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    return range ? this.lineAt(range[0]) : undefined;
  }

  /** Follows aliases to the node they name. */
  deref(node: unknown, key: string, line: number | undefined): unknown {
    let n = node;
    for (let hops = 0; isAlias(n); hops++) {
      const target: unknown = n.resolve(this.#doc);
      if (target === undefined || hops > 100) this.#throw(key, line ?? this.lineOf(n), `alias *${n.source} names no anchor`);
      n = target;
    }
    return n;
  }

  /** Throws a ConfigError at `key` and `line`. */
  fail(key: string | undefined, line: number | undefined, problem: string, hint?: string): never {
    this.#throw(key, line, problem, hint);
  }

  #throw(key: string | undefined, line: number | undefined, problem: string, hint?: string): never {
    const opts: ConstructorParameters<typeof ConfigError>[1] = {};
    if (key) opts.key = key;
    if (line !== undefined) opts.line = line;
    if (this.file !== undefined) opts.file = this.file;
    if (hint !== undefined) opts.hint = hint;
    throw new ConfigError(problem, opts);
  }

  /** Reads `node` as a mapping (null reads as empty). `path` names it in errors. */
  section(node: unknown, path: string, line: number | undefined): Section {
    if (isNull(node)) return new Section(this, path, line, []);
    if (!isMap(node)) this.fail(path, this.lineOf(node) ?? line, `expected a mapping of keys, got ${kindOf(node)}`);
    return new Section(this, path, this.lineOf(node) ?? line, this.#entries(node, path));
  }

  /** Reads `node` as a list (null reads as empty); each item comes with its path and line. */
  list(node: unknown, path: string, line: number | undefined): { node: unknown; path: string; line: number | undefined }[] {
    if (isNull(node)) return [];
    if (!isSeq(node)) this.fail(path, this.lineOf(node) ?? line, `expected a list, got ${kindOf(node)}`, 'Start each item with "- ".');
    return node.items.map((item, i) => {
      const itemLine = this.lineOf(item) ?? line;
      return { node: this.deref(item, `${path}[${i}]`, itemLine), path: `${path}[${i}]`, line: itemLine };
    });
  }

  #entries(map: YAMLMap, path: string, depth = 0): Entry[] {
    const own: Entry[] = [];
    const merged: Entry[] = [];
    for (const pair of map.items) {
      const keyNode = pair.key;
      const keyLine = this.lineOf(keyNode);
      if (isScalar(keyNode) && typeof keyNode.value === 'symbol') {
        // `<<: *anchor` or `<<: [*a, *b]`: keys of the named mappings, unless already present.
        const value = this.deref(pair.value, path, keyLine);
        const sources = isSeq(value) ? value.items.map((it) => this.deref(it, path, keyLine)) : [value];
        for (const src of sources) {
          if (!isMap(src)) this.fail(path, keyLine, `'<<' must name a mapping, got ${kindOf(src)}`);
          if (depth > 20) this.fail(path, keyLine, "'<<' merges nest too deeply");
          merged.push(...this.#entries(src, path, depth + 1));
        }
        continue;
      }
      if (!isScalar(keyNode) || isNull(keyNode)) this.fail(path, keyLine, 'every key must be a plain name');
      const name = typeof keyNode.value === 'string' ? keyNode.value : (keyNode.source ?? String(keyNode.value));
      const valueLine = isNull(pair.value) ? keyLine : (this.lineOf(pair.value) ?? keyLine);
      const keyPath = path ? `${path}.${name}` : name;
      own.push({ name, keyLine, value: this.deref(pair.value, keyPath, valueLine), valueLine });
    }
    const seen = new Set(own.map((e) => e.name));
    for (const e of merged) {
      if (seen.has(e.name)) continue;
      seen.add(e.name);
      own.push(e);
    }
    return own;
  }
}

/** Reads the keys of one YAML mapping, with typed getters that report bad values at their key and line. */
export class Section {
  readonly path: string;
  readonly line: number | undefined;
  readonly #src: YamlSource;
  readonly #entries: Map<string, Entry>;

  constructor(src: YamlSource, path: string, line: number | undefined, entries: Entry[]) {
    this.#src = src;
    this.path = path;
    this.line = line;
    this.#entries = new Map(entries.map((e) => [e.name, e]));
  }

  /**
   * Throws for the first key that is not in `allowed`; keys in `special` (features lstream does not
   * support yet, keys of later Litestream versions) get their own problem and hint.
   */
  checkKeys(allowed: readonly string[], special: Readonly<Record<string, { problem: string; hint: string }>> = {}): void {
    for (const e of this.#entries.values()) {
      if (allowed.includes(e.name)) continue;
      const key = this.keyPath(e.name);
      const why = Object.hasOwn(special, e.name) ? special[e.name] : undefined;
      if (why !== undefined) this.#src.fail(key, e.keyLine, why.problem, why.hint);
      const near = closestKey(e.name, allowed);
      this.#src.fail(
        key,
        e.keyLine,
        `unknown key '${e.name}' in ${this.path || 'the top level'}`,
        near ? `Did you mean '${near}'?` : `Known keys here: ${allowed.join(', ')}.`,
      );
    }
  }

  /** Returns true when the mapping has `name`, even with an empty value. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Returns true when `name` is present with a non-null value. */
  isSet(name: string): boolean {
    const e = this.#entries.get(name);
    return e !== undefined && !isNull(e.value);
  }

  /** Returns the dotted path of `name` inside this mapping. */
  keyPath(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  /** Returns the line of `name`'s value, or of this mapping when the key is absent. */
  lineOf(name: string | undefined): number | undefined {
    const e = name === undefined ? undefined : this.#entries.get(name);
    return e?.valueLine ?? e?.keyLine ?? this.line;
  }

  /** Throws a ConfigError at `name` (or at this mapping when `name` is undefined). */
  fail(name: string | undefined, problem: string, hint?: string): never {
    this.#src.fail(name === undefined ? this.path : this.keyPath(name), this.lineOf(name), problem, hint);
  }

  /** Returns the raw (alias-resolved) node of `name`. */
  node(name: string): unknown {
    return this.#entries.get(name)?.value;
  }

  /** Returns `name` as a mapping section. */
  section(name: string): Section {
    return this.#src.section(this.node(name), this.keyPath(name), this.lineOf(name));
  }

  /** Returns `name` as a list of mappings (`dbs`, `replicas`), each read as a section. */
  sections(name: string): Section[] {
    return this.#src.list(this.node(name), this.keyPath(name), this.lineOf(name)).map((item) => this.#src.section(item.node, item.path, item.line));
  }

  /**
   * Returns `name` as a string; numbers and booleans read as their source text (as yaml.v2 does),
   * empty and null values as undefined.
   */
  string(name: string): string | undefined {
    const node = this.node(name);
    if (isNull(node)) return undefined;
    if (!isScalar(node)) this.fail(name, `expected a string, got ${kindOf(node)}`);
    const v = node.value;
    const s = typeof v === 'string' ? v : (node.source ?? String(v));
    return s === '' ? undefined : s;
  }

  /** Returns `name` as a boolean (`true`/`false`, or YAML 1.1 words such as `yes`/`off`). */
  bool(name: string): boolean | undefined {
    const node = this.node(name);
    if (isNull(node)) return undefined;
    if (isScalar(node)) {
      if (typeof node.value === 'boolean') return node.value;
      if (node.type === 'PLAIN' && node.source !== undefined) {
        const b = BOOL_WORDS.get(node.source);
        if (b !== undefined) return b;
      }
    }
    this.fail(name, `expected true or false, got ${kindOf(node)}`);
  }

  /** Returns `name` as an integer no smaller than `min`. */
  int(name: string, min = 0): number | undefined {
    const node = this.node(name);
    if (isNull(node)) return undefined;
    let n: number | undefined;
    if (isScalar(node)) {
      if (typeof node.value === 'number') n = node.value;
      else if (typeof node.value === 'string' && node.type === 'PLAIN' && /^[-+]?\d[\d_]*$/.test(node.value)) {
        n = Number(node.value.replaceAll('_', ''));
      }
    }
    if (n === undefined || !Number.isSafeInteger(n)) this.fail(name, `expected a whole number, got ${kindOf(node)}`);
    if (n < min) this.fail(name, `must be at least ${min}, got ${n}`);
    return n;
  }

  /** Returns `name`, a Go duration string (`10s`, `1m30s`, `0`), in milliseconds; never negative. */
  duration(name: string): number | undefined {
    const node = this.node(name);
    if (isNull(node)) return undefined;
    if (!isScalar(node)) this.fail(name, `expected a duration such as 10s, got ${kindOf(node)}`);
    if (typeof node.value === 'number') {
      if (node.value === 0) return 0;
      this.fail(name, `duration ${node.source ?? String(node.value)} has no unit`, 'Durations need a unit, e.g. 10s, 250ms, 1m30s or 24h.');
    }
    if (typeof node.value !== 'string') this.fail(name, `expected a duration such as 10s, got ${kindOf(node)}`);
    const r = parseGoDuration(node.value);
    if ('error' in r) this.fail(name, r.error, 'Durations need a unit, e.g. 10s, 250ms, 1m30s or 24h.');
    if (r.ms < 0) this.fail(name, `duration '${node.value}' is negative`, 'Use 0 or a positive duration.');
    return r.ms;
  }

  /** Returns `name`, a duration as `duration` reads it, that must be above 0; `why` says what it is for. */
  positiveDuration(name: string, why: string): number | undefined {
    const ms = this.duration(name);
    if (ms === 0) this.fail(name, 'must be above 0', `Use a duration such as 1s. ${why}`);
    return ms;
  }

  /** Returns `name`, an integer byte count or a size such as `512MB` or `1GiB`, in bytes; above 0. */
  bytes(name: string): number | undefined {
    const node = this.node(name);
    if (isNull(node)) return undefined;
    let bytes: number | undefined;
    if (isScalar(node) && typeof node.value === 'number' && Number.isSafeInteger(node.value)) bytes = node.value;
    else if (isScalar(node) && typeof node.value === 'string') {
      const r = parseByteSize(node.value);
      if ('error' in r) this.fail(name, r.error, 'Give a byte count or a size such as 512MB or 1GiB.');
      bytes = r.bytes;
    } else this.fail(name, `expected a size such as 512MB, got ${kindOf(node)}`);
    if (bytes <= 0) this.fail(name, `must be greater than 0, got ${bytes}`);
    return bytes;
  }
}
