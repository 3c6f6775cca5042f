/**
 * Reading a component's `config.json` with typed accessors: a missing key without a default, or a
 * value of the wrong kind, is reported with the file, the key, what was expected and what was found.
 */
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';
import { parsePythonJson } from './python-json.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export class Config {
  constructor(readonly file: string, readonly raw: Record<string, Json>) {}

  static read(file: string): Config {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      throw new FileFormatError(file, 'config file missing');
    }
    let raw: unknown;
    try {
      raw = parsePythonJson(text); // Python's json writes NaN / Infinity / -Infinity
    } catch (e) {
      throw new FileFormatError(file, `not valid JSON (${(e as Error).message})`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FileFormatError(file, 'config is not a JSON object');
    return new Config(file, raw as Record<string, Json>);
  }

  has(key: string): boolean { return this.raw[key] !== undefined && this.raw[key] !== null; }

  private value(key: string, fallback: Json | undefined): Json {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new FileFormatError(this.file, 'required config key missing', key);
      return fallback;
    }
    return v;
  }

  number(key: string, fallback?: number): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number') throw new FileFormatError(this.file, `expected a number, got ${JSON.stringify(v)}`, key);
    return v;
  }

  int(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v)) throw new FileFormatError(this.file, `expected an integer, got ${v}`, key);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.value(key, fallback);
    if (typeof v !== 'boolean') throw new FileFormatError(this.file, `expected true or false, got ${JSON.stringify(v)}`, key);
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.value(key, fallback);
    if (typeof v !== 'string') throw new FileFormatError(this.file, `expected a string, got ${JSON.stringify(v)}`, key);
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback?: T): T {
    const v = this.string(key, fallback);
    if (!allowed.includes(v as T)) throw new FileFormatError(this.file, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`, key);
    return v as T;
  }

  strings(key: string, fallback?: string[]): string[] {
    const v = this.value(key, fallback);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new FileFormatError(this.file, `expected a list of strings, got ${JSON.stringify(v)}`, key);
    return v as string[];
  }

  /** A list of strings each of which is one of `allowed` (block types): names the first unsupported one. */
  stringsOf<T extends string>(key: string, allowed: readonly T[], fallback?: T[]): T[] {
    const list = this.strings(key, fallback);
    const bad = list.find((t) => !(allowed as readonly string[]).includes(t));
    if (bad !== undefined) throw new FileFormatError(this.file, `block type ${bad} is not supported (expected one of ${allowed.join(', ')})`, key);
    return list as T[];
  }

  /** An int or a list of ints (per-block settings such as attention_head_dim), broadcast to `n`. */
  ints(key: string, n: number, fallback?: number | number[]): number[] {
    const v = this.value(key, fallback);
    const list = typeof v === 'number' ? Array<number>(n).fill(v) : v;
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'number' && Number.isInteger(x))) {
      throw new FileFormatError(this.file, `expected an integer or a list of integers, got ${JSON.stringify(v)}`, key);
    }
    if (list.length !== n) throw new FileFormatError(this.file, `expected ${n} values (one per block), got ${list.length}`, key);
    return list as number[];
  }

  optionalInts(key: string, n: number): number[] | undefined {
    return this.has(key) ? this.ints(key, n) : undefined;
  }
}
