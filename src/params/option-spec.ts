/**
 * One definition of a job parameter, read by both front ends: the CLI (a commander option: flag
 * spelling, help, parser, default) and the HTTP server (a TypeBox property: type, range, default,
 * description; the web UI shows the description as the field's tooltip). The help text is written
 * once, in CLI terms; the server's description is the same text with `--kebab-flag` mentions
 * rewritten to the JSON field names (`camelCase`).
 */
import { Option, type Command } from 'commander';
import { Type, type TOptional, type TSchema } from 'typebox';
import { choice, float, int } from '../cli/parse.js';

export type Presence = 'required' | 'default' | 'optional';

export interface OptionSpec<S extends TSchema = TSchema, P extends Presence = Presence> {
  /** commander's flag spelling, e.g. `--lambda-p <x>` or `--no-checkpointing`. */
  flags: string;
  /** --help text, the schema's description and the web UI's tooltip. */
  help: string;
  /** The value's type and range (server validation; the CLI parser is derived from it unless `parse`). */
  type: S;
  /** required: must be given; default: `default` when absent; optional: absent means "let the pipeline decide". */
  presence: P;
  default?: unknown;
  /** CLI value parser (commander's argParser; `previous` for repeatable flags). */
  parse?: (value: string, previous: never) => unknown;
  /** Not a server field (output paths, local files the server replaces with its own). */
  cliOnly?: boolean;
  /** Not a CLI flag of the command (the CLI adds it elsewhere, or takes it another way). */
  serverOnly?: boolean;
  /** What the value names on the server: a name under --models, or an uploaded image. */
  ref?: 'models' | 'image';
  /** A stricter type for the server than the CLI's (same static type), e.g. image size limits. */
  serverType?: TSchema;
}

export type OptionSpecs = Record<string, OptionSpec>;

type Extra = Partial<Pick<OptionSpec, 'parse' | 'ref' | 'serverType'>>;

/** A parameter that must be given. */
export function required<S extends TSchema>(flags: string, help: string, type: S, extra: Extra = {}): OptionSpec<S, 'required'> {
  return { flags, help, type, presence: 'required', ...extra };
}
/** A parameter with a default (the same on the CLI and the server). */
export function withDefault<S extends TSchema>(flags: string, help: string, type: S, dflt: unknown, extra: Extra = {}): OptionSpec<S, 'default'> {
  return { flags, help, type, presence: 'default', default: dflt, ...extra };
}
/** A parameter whose absence means "derived" (from other parameters, the model, ...). */
export function optional<S extends TSchema>(flags: string, help: string, type: S, extra: Extra = {}): OptionSpec<S, 'optional'> {
  return { flags, help, type, presence: 'optional', ...extra };
}
export function cliOnly<T extends OptionSpec>(spec: T): T & { cliOnly: true } {
  return { ...spec, cliOnly: true };
}
export function serverOnly<T extends OptionSpec>(spec: T): T & { serverOnly: true } {
  return { ...spec, serverOnly: true };
}

/** commander's attribute name of a flag spelling: `--prompt-2 <t>` -> prompt2, `--no-checkpointing` -> checkpointing. */
export function attributeName(flags: string): string {
  return new Option(flags).attributeName();
}
const longFlag = (flags: string): string => /--[^\s,<[]+/.exec(flags)![0];
const camel = (kebab: string): string => kebab.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The help text in the server's terms: `--lambda-p` -> `lambdaP`. */
export function serverText(help: string): string {
  return help.replace(/--([a-z][a-z0-9-]*[a-z0-9])/g, (_, k: string) => camel(k));
}

const REF_PREFIX = { models: 'a name under --models', image: 'an image (an upload id from POST /api/uploads, or a data: URL)' } as const;
/** Lists (repeatable flags) say so: the web form makes single-image drop zones of "an image" fields only. */
const REFS_PREFIX = { models: 'names under --models', image: 'images (upload ids from POST /api/uploads, or data: URLs)' } as const;

/** A copy of a TypeBox schema with more annotations (keeps its hidden kind markers). */
function annotate<T extends TSchema>(s: T, extra: Record<string, unknown>): T {
  const c = Object.create(Object.getPrototypeOf(s) as object, Object.getOwnPropertyDescriptors(s)) as T;
  return Object.assign(c, extra);
}

type ServerKeys<D extends OptionSpecs> = { [K in keyof D]: D[K] extends { cliOnly: true } ? never : K }[keyof D];
/** The TypeBox properties of a set of specs, typed (absent optional ones are `TOptional`). */
export type SchemaProperties<D extends OptionSpecs> = {
  [K in ServerKeys<D>]: D[K]['presence'] extends 'optional' ? TOptional<D[K]['type']> : D[K]['type']
};

/** The server's request properties (keys are the CLI's attribute names). */
export function schemaProperties<D extends OptionSpecs>(specs: D): SchemaProperties<D> {
  const out: Record<string, TSchema> = {};
  for (const [key, s] of Object.entries(specs)) {
    if (s.cliOnly) continue;
    const help = serverText(s.help);
    const list = (s.type as { type?: string }).type === 'array';
    const description = s.ref ? `${(list ? REFS_PREFIX : REF_PREFIX)[s.ref]}: ${help}` : help;
    const t = annotate(s.serverType ?? s.type, { description, ...(s.presence === 'default' ? { default: s.default } : {}) });
    out[key] = s.presence === 'optional' ? Type.Optional(t) : t;
  }
  return out as SchemaProperties<D>;
}

interface JsonSchemaLike { type?: string; enum?: string[]; minimum?: number; maximum?: number; items?: JsonSchemaLike }

/** The CLI parser a type implies: integers and numbers with their range, enums; undefined for strings. */
function parserOf(flag: string, t: JsonSchemaLike): ((v: string, prev?: unknown[]) => unknown) | undefined {
  if (t.enum) return choice(flag, t.enum);
  if (t.type === 'integer') return int(flag, t.minimum, t.maximum);
  if (t.type === 'number') return float(flag, t.minimum, t.maximum);
  if (t.type === 'array' && t.items) {
    const item = parserOf(flag, t.items) ?? ((v: string) => v);
    return (v: string, prev: unknown[] = []) => [...prev, item(v)];
  }
  return undefined;
}

/** The commander option of a spec. */
export function cliOption(key: string, s: OptionSpec): Option {
  const name = attributeName(s.flags);
  // The one definition is keyed by the CLI's attribute name (output files aside): say so when they drift.
  if (!s.cliOnly && name !== key) throw new Error(`option spec ${key}: flag ${s.flags} has the attribute name ${name}`);
  const o = new Option(s.flags, s.help);
  const parse = s.parse ?? parserOf(longFlag(s.flags), s.type as JsonSchemaLike);
  if (parse) o.argParser(parse as (v: string, prev: unknown) => unknown);
  if (s.presence === 'default' && !s.flags.startsWith('--no-')) o.default(s.default);
  if (s.presence === 'required') o.makeOptionMandatory();
  return o;
}

/** Add the specs' options to a command (in the specs' order), skipping server-only ones. */
export function addOptions(cmd: Command, specs: OptionSpecs): Command {
  for (const [key, s] of Object.entries(specs)) if (!s.serverOnly) cmd.addOption(cliOption(key, s));
  return cmd;
}
