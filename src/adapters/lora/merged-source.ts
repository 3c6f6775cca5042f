/**
 * A model part's weights with LoRAs merged in: `W + sum_i factor_i * (up_i @ down_i)`. `read` merges one
 * tensor at a time when asked; graph builders instead take the stored tensor (ONNX Runtime keeps reading
 * it from the checkpoint) and the low-rank terms, and add them in the graph, where ONNX Runtime folds
 * them once. The base weights are never modified or copied whole, so unloading is dropping this wrapper.
 */
import type { Tensor } from '../../tensor.js';
import type { LowRankTerm, TensorSource } from '../../io/weights.js';
import type { LoraFile, LoraModule } from './lora-file.js';

/** One LoRA's term for one weight: factor = scale * alpha / rank (diffusers' PEFT scaling). */
export interface LoraTerm {
  readonly file: LoraFile;
  readonly module: LoraModule;
  readonly factor: number;
}

export class LoraMergedSource implements TensorSource {
  readonly origin: string;

  constructor(
    readonly base: TensorSource,
    /** Weight key (`<module>.weight`) -> the terms added to it, in load order. */
    readonly terms: ReadonlyMap<string, readonly LoraTerm[]>,
    /** Identifies the LoRA files and scales, for graph and session caches. */
    readonly fingerprint: string,
  ) {
    this.origin = base.origin;
  }

  keys(): Iterable<string> { return this.base.keys(); }
  has(key: string): boolean { return this.base.has(key); }
  shape(key: string): readonly number[] { return this.base.shape(key); }

  read(key: string): Tensor {
    const w = this.base.read(key);
    const terms = this.terms.get(key);
    if (!terms) return w;
    // A copy: the base source may hand out a buffer it keeps.
    const out = Float32Array.from(w.data);
    for (const t of terms) addLoraTerm(out, w.shape, t);
    return { shape: [...w.shape], data: out };
  }

  location(key: string): { path: string; offset: number } | undefined {
    return this.terms.has(key) ? undefined : this.base.location?.(key);
  }

  /** Graphs add the terms themselves (folded by ONNX Runtime), so the stored weight keeps its file location. */
  lowRankTerms(key: string): { base: TensorSource; terms: LowRankTerm[] } | undefined {
    const terms = this.terms.get(key);
    if (!terms) return undefined;
    const rows = this.base.shape(key)[0]!;
    return {
      base: this.base,
      terms: terms.map((t) => {
        const up = t.file.tensors.readFloat32(t.module.up);
        const down = t.file.tensors.readFloat32(t.module.down);
        const r = t.module.rank;
        return { up: { shape: [rows, r], data: up.data }, down: { shape: [r, down.data.length / r], data: down.data }, factor: t.factor };
      }),
    };
  }
}

/**
 * W += factor * (up @ down), with up [out, r(, 1, 1)] and down [r, in(, kh, kw)] (a k x k conv's delta
 * is up[o, r] * down[r, i, y, x] summed over r). Rounded as PEFT's float32 merge: the product summed
 * over r in float32, times the scaling, added to W (bit-exact with diffusers' fuse_lora on the goldens).
 */
export function addLoraTerm(w: Float32Array, shape: readonly number[], t: LoraTerm): void {
  const down = t.file.tensors.readFloat32(t.module.down).data;
  const up = t.file.tensors.readFloat32(t.module.up).data;
  const rows = shape[0]!;
  const cols = w.length / rows;
  const r = t.module.rank;
  const f = Math.fround(t.factor);
  const acc = new Float32Array(cols);
  for (let o = 0; o < rows; o++) {
    acc.fill(0);
    for (let k = 0; k < r; k++) {
      const u = up[o * r + k]!;
      if (u === 0) continue;
      const d0 = k * cols;
      for (let j = 0; j < cols; j++) acc[j]! += Math.fround(u * down[d0 + j]!);
    }
    const w0 = o * cols;
    for (let j = 0; j < cols; j++) w[w0 + j] = w[w0 + j]! + Math.fround(acc[j]! * f);
  }
}
