/** A dense float32 tensor in row-major (C) order: what crosses the boundary between TypeScript and the engine. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: readonly number[], data?: Float32Array | number[]): Tensor {
  const n = numel(shape);
  const d = data === undefined ? new Float32Array(n) : data instanceof Float32Array ? data : Float32Array.from(data);
  if (d.length !== n) throw new Error(`tensor: shape [${shape.join(',')}] needs ${n} values, got ${d.length}`);
  return { shape: [...shape], data: d };
}

/** Rows i..j-1 along the first axis, sharing memory. */
export function rows(t: Tensor, i: number, j = i + 1): Tensor {
  const inner = numel(t.shape.slice(1));
  return { shape: [j - i, ...t.shape.slice(1)], data: t.data.subarray(i * inner, j * inner) };
}

/** Concatenate along the first axis. */
export function concatRows(parts: readonly Tensor[]): Tensor {
  if (parts.length === 0) throw new Error('concatRows: nothing to concatenate');
  const inner = parts[0]!.shape.slice(1);
  let n = 0;
  for (const p of parts) {
    if (p.shape.slice(1).join(',') !== inner.join(',')) throw new Error(`concatRows: [${p.shape}] does not fit [*,${inner}]`);
    n += p.shape[0]!;
  }
  const out = new Float32Array(n * numel(inner));
  let off = 0;
  for (const p of parts) { out.set(p.data, off); off += p.data.length; }
  return { shape: [n, ...inner], data: out };
}

export function maxAbsDiff(a: Tensor | Float32Array, b: Tensor | Float32Array): number {
  const x = a instanceof Float32Array ? a : a.data;
  const y = b instanceof Float32Array ? b : b.data;
  if (x.length !== y.length) return Infinity;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function hasNonFinite(t: Tensor): boolean {
  for (const v of t.data) if (!Number.isFinite(v)) return true;
  return false;
}
