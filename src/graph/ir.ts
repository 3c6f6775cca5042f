/**
 * The tensor-graph IR: values with static shapes and dtypes, nodes named after ONNX operators.
 * Model builders write into a Graph through the functions of ops.ts; onnx.ts emits it as an ONNX
 * ModelProto whose weights travel as in-memory external data, so weights are never copied into
 * the protobuf (which could not hold a 3.4 GB UNet anyway).
 */
import type { Tensor } from '../tensor.js';

export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8';

export type AttrValue = number | number[] | string | { float: number } | { floats: number[] } | { tensor: ConstData };

export interface ConstData {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;
  /**
   * The bytes already lie in a file (this dtype, little-endian): ONNX Runtime can read them from there,
   * so they never pass through JavaScript memory (`data` is then empty; `load` reads them if needed).
   */
  readonly file?: FileSpan;
}

export interface FileSpan {
  readonly path: string;
  readonly offset: number;
  readonly load: () => Float32Array;
}

export class Value {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}
  get rank(): number { return this.shape.length; }
  dim(i: number): number {
    const d = this.shape[i < 0 ? this.shape.length + i : i];
    if (d === undefined) throw new Error(`${this.name}: no axis ${i} in shape [${this.shape}]`);
    return d;
  }
}

export interface Node {
  readonly op: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
  /** The same inputs and outputs as Values (null for an omitted optional input), for graph transforms such as autodiff. */
  readonly inputValues: readonly (Value | null)[];
  readonly outputValues: readonly Value[];
}

export interface Initializer {
  readonly value: Value;
  readonly data: ConstData;
  /** Large tensors go to external data (shared, zero-copy); small ones are embedded. */
  readonly external: boolean;
}

const EXTERNAL_MIN_BYTES = 1024;

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: { name: string; value: Value }[] = [];
  readonly initializers = new Map<string, Initializer>();
  private counter = 0;
  private scopeStack: string[] = [];

  constructor(readonly name = 'visprompt') {}

  /** Prefix for the names of values created inside `fn` (readable ONNX, easier profiling). */
  scope<T>(name: string, fn: () => T): T {
    this.scopeStack.push(name);
    try { return fn(); } finally { this.scopeStack.pop(); }
  }

  fresh(hint: string): string {
    const prefix = this.scopeStack.length ? this.scopeStack.join('.') + '/' : '';
    return `${prefix}${hint}_${this.counter++}`;
  }

  input(name: string, shape: readonly number[], dtype: DType = 'float32'): Value {
    if (this.inputs.some((v) => v.name === name)) throw new Error(`graph input ${name} declared twice`);
    const v = new Value(this, name, shape, dtype);
    this.inputs.push(v);
    return v;
  }

  /** The constant data behind a value, if it is an initializer (weights, constants). */
  constantData(v: Value): ConstData | undefined {
    return this.initializers.get(v.name)?.data;
  }

  /** A named weight (float32). The same name returns the same value, so shared weights are stored once. */
  weight(name: string, t: Tensor & { file?: FileSpan }): Value {
    const existing = this.initializers.get(name);
    if (existing) return existing.value;
    const v = new Value(this, name, t.shape, 'float32');
    const data: ConstData = t.file ? { dtype: 'float32', shape: t.shape, data: t.data, file: t.file } : { dtype: 'float32', shape: t.shape, data: t.data };
    this.initializers.set(name, { value: v, data, external: t.file !== undefined || t.data.byteLength >= EXTERNAL_MIN_BYTES });
    return v;
  }

  /** A constant tensor (embedded when small). */
  constant(data: ConstData, hint = 'const'): Value {
    const name = this.fresh(hint);
    const v = new Value(this, name, data.shape, data.dtype);
    this.initializers.set(name, { value: v, data, external: data.data.byteLength >= EXTERNAL_MIN_BYTES });
    return v;
  }

  output(name: string, value: Value): void {
    if (this.outputs.some((o) => o.name === name)) throw new Error(`graph output ${name} declared twice`);
    this.outputs.push({ name, value });
  }

  /** Append one node; the caller states the output shapes (ops.ts infers them). */
  node(op: string, inputs: readonly (Value | null)[], outs: readonly { shape: readonly number[]; dtype: DType }[], attrs: Record<string, AttrValue> = {}, domain = ''): Value[] {
    const outputs = outs.map((o) => new Value(this, this.fresh(op), o.shape, o.dtype));
    this.nodes.push({ op, domain, inputs: inputs.map((v) => (v === null ? '' : v.name)), outputs: outputs.map((v) => v.name), attrs, inputValues: inputs, outputValues: outputs });
    return outputs;
  }
}
