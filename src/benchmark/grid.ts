/**
 * The benchmark grid: methods x settings. From flags
 *   --methods indetail-ip,kv-concat --sweep lambdaP=0.5,1,2 --sweep indetail-ip.stratifiedSteps=0,10,25 --set kv-concat.guidance=5
 * or from a JSON / YAML file with the same keys:
 *   methods: [indetail-ip, kv-concat]
 *   set: { kv-concat.guidance: 5 }
 *   sweep: { lambdaP: [0.5, 1, 2], stratifiedSteps: [0, 10, 25] }
 *   sweepMode: product        # or "each": one parameter at a time, the others at their defaults
 *   configs: [{ method: indetail-ip, guidanceMode: conflicting, label: "w/o ConFG" }]
 * A parameter applies only to the methods that read it (lambdaP sweeps InDetail-IP, not RIVAL), and
 * `method.param` scopes it to one method. Parameter names are the library's (camelCase); the CLI's
 * kebab-case spellings (lambda-p) are accepted.
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { FileFormatError, InputError } from '../errors.js';
import { GUIDANCE_MODES, METHOD_NAMES, type MethodName } from '../methods/method.js';

type Kind = { type: 'int'; min: number; max?: number } | { type: 'float'; min?: number } | { type: 'enum'; values: readonly string[] };

/** Every grid parameter: its kind and the methods that read it ('all': the sampler's own). */
export const GRID_PARAMETERS: Readonly<Record<string, Kind & { methods: readonly MethodName[] | 'all' }>> = {
  steps: { type: 'int', min: 1, max: 1000, methods: 'all' },
  guidance: { type: 'float', min: 0, methods: 'all' },
  guidanceMode: { type: 'enum', values: GUIDANCE_MODES, methods: 'all' },
  stratifiedSteps: { type: 'int', min: 0, methods: ['indetail-ip'] },
  lambdaP: { type: 'float', min: 0, methods: ['indetail-ip'] },
  lambdaG: { type: 'float', min: 0, methods: ['indetail-ip'] },
  tAlign: { type: 'int', min: 0, max: 1000, methods: ['kv-concat'] },
  tEarly: { type: 'int', min: 0, max: 1000, methods: ['kv-concat'] },
  startStep: { type: 'int', min: 0, methods: ['kv-replace'] },
  startLayer: { type: 'int', min: 0, methods: ['kv-replace'] },
  scoreShift: { type: 'float', methods: ['style-aligned'] },
};

export type ParamValue = number | string;

export interface GridConfig {
  /** Folder-safe identity: the method and its explicitly given parameters, e.g. indetail-ip_lambdaP=0.5. */
  readonly id: string;
  readonly label: string;
  readonly method: MethodName;
  /** Parameters given for this configuration (the rest are the method's / the run's defaults). */
  readonly params: Readonly<Record<string, ParamValue>>;
}

export interface GridSpec {
  methods?: string[];
  set?: Record<string, unknown>;
  sweep?: Record<string, unknown>;
  sweepMode?: 'product' | 'each';
  configs?: Record<string, unknown>[];
}

/** lambda-p -> lambdaP */
function camel(name: string): string { return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()); }

function parseKey(key: string, where: string): { method?: MethodName; param: string } {
  const dot = key.lastIndexOf('.');
  const scope = dot > 0 ? key.slice(0, dot) : undefined, param = camel(dot > 0 ? key.slice(dot + 1) : key);
  if (scope !== undefined && !(METHOD_NAMES as readonly string[]).includes(scope)) throw new InputError(`${where} ${key}: unknown method ${JSON.stringify(scope)} (expected one of ${METHOD_NAMES.join(', ')})`);
  const spec = GRID_PARAMETERS[param];
  if (!spec) throw new InputError(`${where} ${key}: unknown parameter ${JSON.stringify(param)} (expected one of ${Object.keys(GRID_PARAMETERS).join(', ')})`);
  if (scope !== undefined && spec.methods !== 'all' && !spec.methods.includes(scope as MethodName)) throw new InputError(`${where} ${key}: ${scope} does not use ${param} (used by ${spec.methods.join(', ')})`);
  return scope !== undefined ? { method: scope as MethodName, param } : { param };
}

export function parseParamValue(param: string, v: unknown, where: string): ParamValue {
  const spec = GRID_PARAMETERS[param]!;
  if (spec.type === 'enum') {
    if (typeof v !== 'string' || !spec.values.includes(v)) throw new InputError(`${where} ${param}=${String(v)}: expected one of ${spec.values.join(', ')}`);
    return v;
  }
  const x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  const bad = !Number.isFinite(x) || (spec.type === 'int' && !Number.isInteger(x)) || (spec.min !== undefined && x < spec.min) || (spec.type === 'int' && spec.max !== undefined && x > spec.max);
  if (bad) throw new InputError(`${where} ${param}=${String(v)}: expected ${spec.type === 'int' ? 'an integer' : 'a number'}${spec.min !== undefined ? ` >= ${spec.min}` : ''}${spec.type === 'int' && spec.max !== undefined ? ` and <= ${spec.max}` : ''}`);
  return x;
}

/** `key=v1,v2,...` (a --sweep or --set flag) */
export function parseAssignment(s: string, flag: string): [string, string[]] {
  const eq = s.indexOf('=');
  if (eq <= 0 || eq === s.length - 1) throw new InputError(`${flag} ${s}: expected NAME=VALUE[,VALUE...] (e.g. lambdaP=0.5,1,2)`);
  return [s.slice(0, eq).trim(), s.slice(eq + 1).split(',').map((x) => x.trim())];
}

/** Read a grid file (.json, .yaml, .yml). */
export function readGridFile(file: string): GridSpec {
  if (!fs.existsSync(file)) throw new InputError(`--grid ${file}: no such file`);
  const text = fs.readFileSync(file, 'utf8');
  let o: unknown;
  try { o = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text); } catch (e) { throw new FileFormatError(file, `not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'} (${(e as Error).message.split('\n')[0]})`); }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new FileFormatError(file, 'expected a mapping with methods / set / sweep / configs');
  const g = o as Record<string, unknown>;
  for (const k of Object.keys(g)) if (!['methods', 'set', 'sweep', 'sweepMode', 'configs'].includes(k)) throw new FileFormatError(file, `unknown key (expected methods, set, sweep, sweepMode, configs)`, k);
  const methods = g['methods'];
  if (methods !== undefined && !(Array.isArray(methods) && methods.every((m) => typeof m === 'string'))) throw new FileFormatError(file, 'expected a list of method names', 'methods');
  for (const k of ['set', 'sweep'] as const) if (g[k] !== undefined && (typeof g[k] !== 'object' || g[k] === null || Array.isArray(g[k]))) throw new FileFormatError(file, 'expected a mapping of parameter names', k);
  if (g['sweepMode'] !== undefined && g['sweepMode'] !== 'product' && g['sweepMode'] !== 'each') throw new FileFormatError(file, `expected "product" or "each", got ${JSON.stringify(g['sweepMode'])}`, 'sweepMode');
  if (g['configs'] !== undefined && !(Array.isArray(g['configs']) && g['configs'].every((c) => c && typeof c === 'object' && !Array.isArray(c)))) throw new FileFormatError(file, 'expected a list of mappings', 'configs');
  return g as GridSpec;
}

function idOf(method: string, params: Record<string, ParamValue>): string {
  const parts = Object.keys(params).sort().map((k) => `${k}=${String(params[k])}`);
  return [method, ...parts].join('_').replace(/[^A-Za-z0-9._=-]+/g, '-');
}

function cartesian(axes: [string, ParamValue[]][]): Record<string, ParamValue>[] {
  let out: Record<string, ParamValue>[] = [{}];
  for (const [k, vs] of axes) out = out.flatMap((o) => vs.map((v) => ({ ...o, [k]: v })));
  return out;
}

/**
 * Expand a grid into configurations. `base` holds run-wide defaults (steps, guidance) that stay out
 * of the ids; `set` entries scoped to a method, sweeps and explicit configs are part of the id.
 */
export function expandGrid(spec: GridSpec, where = '--grid'): GridConfig[] {
  const methods = (spec.methods ?? ['indetail-ip', 'kv-concat']).map((m) => {
    if (!(METHOD_NAMES as readonly string[]).includes(m)) throw new InputError(`--methods ${m}: unknown method (expected one of ${METHOD_NAMES.join(', ')})`);
    return m as MethodName;
  });
  const applies = (param: string, m: MethodName, scope?: MethodName): boolean => {
    const p = GRID_PARAMETERS[param]!;
    return (scope === undefined || scope === m) && (p.methods === 'all' || p.methods.includes(m));
  };
  const sets = Object.entries(spec.set ?? {}).map(([k, v]) => ({ ...parseKey(k, `${where} set`), value: v }));
  const sweeps = Object.entries(spec.sweep ?? {}).map(([k, v]) => {
    const key = parseKey(k, `${where} sweep`);
    const list = Array.isArray(v) ? v : [v];
    if (list.length === 0) throw new InputError(`${where} sweep ${k}: no values`);
    return { ...key, values: list.map((x) => parseParamValue(key.param, x, `${where} sweep`)) };
  });
  for (const s of sweeps) if (!methods.some((m) => applies(s.param, m, s.method))) throw new InputError(`${where} sweep ${s.method ? `${s.method}.` : ''}${s.param}: none of the methods ${methods.join(', ')} uses it`);
  const out: GridConfig[] = [];
  const add = (method: MethodName, params: Record<string, ParamValue>, label?: string): void => {
    const id = idOf(method, params);
    if (out.some((c) => c.id === id)) return;
    out.push({ id, label: label ?? id, method, params });
  };
  for (const m of methods) {
    const fixed: Record<string, ParamValue> = {};
    for (const s of sets) if (applies(s.param, m, s.method) && s.method !== undefined) fixed[s.param] = parseParamValue(s.param, s.value, `${where} set`);
    const axes = sweeps.filter((s) => applies(s.param, m, s.method)).map((s): [string, ParamValue[]] => [s.param, s.values]);
    const combos = axes.length === 0 ? [{}] : spec.sweepMode === 'each' ? axes.flatMap(([k, vs]) => vs.map((v) => ({ [k]: v }))) : cartesian(axes);
    for (const c of combos) add(m, { ...fixed, ...c });
  }
  for (const [i, c] of (spec.configs ?? []).entries()) {
    const m = c['method'];
    if (typeof m !== 'string' || !(METHOD_NAMES as readonly string[]).includes(m)) throw new InputError(`${where} configs[${i}].method: expected one of ${METHOD_NAMES.join(', ')}, got ${JSON.stringify(m)}`);
    const params: Record<string, ParamValue> = {};
    for (const [k, v] of Object.entries(c)) {
      if (k === 'method' || k === 'label') continue;
      const { param } = parseKey(k, `${where} configs[${i}]`);
      if (!applies(param, m as MethodName)) throw new InputError(`${where} configs[${i}]: ${m} does not use ${param}`);
      params[param] = parseParamValue(param, v, `${where} configs[${i}]`);
    }
    add(m as MethodName, params, typeof c['label'] === 'string' ? c['label'] : undefined);
  }
  return out;
}

/** Run-wide values of unscoped `set` entries (steps=20 for every method). */
export function globalSets(spec: GridSpec, where = '--grid'): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [k, v] of Object.entries(spec.set ?? {})) {
    const key = parseKey(k, `${where} set`);
    if (key.method === undefined) out[key.param] = parseParamValue(key.param, v, `${where} set`);
  }
  return out;
}

/** Parameters swept with numeric values (the x axes of the report's plots). */
export function sweptParameters(configs: readonly GridConfig[]): string[] {
  const names = new Set<string>();
  for (const c of configs) for (const k of Object.keys(c.params)) names.add(k);
  return [...names].filter((k) => GRID_PARAMETERS[k]!.type !== 'enum' && new Set(configs.filter((c) => k in c.params).map((c) => c.params[k])).size > 1);
}
