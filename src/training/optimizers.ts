/**
 * Optimizers on named float32 parameters, as torch.optim defines them, with state that saves to and
 * loads from safetensors (moments as `state.<name>.exp_avg` / `.exp_avg_sq`, the step count in metadata).
 */
import { FileFormatError } from '../errors.js';
import type { Tensor } from '../tensor.js';

export type Params = Record<string, Tensor>;

export interface Optimizer {
  /** Update `params` in place from `grads` (same names and sizes). */
  step(params: Params, grads: Params): void;
  readonly stepCount: number;
  stateTensors(): Record<string, Tensor>;
  loadState(tensors: Record<string, Tensor>, stepCount: number, file: string): void;
}

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** torch.optim.Adam (amsgrad off; weight decay added to the gradient, as torch's L2 form). */
export class Adam implements Optimizer {
  private m = new Map<string, Float64Array>();
  private v = new Map<string, Float64Array>();
  private t = 0;

  constructor(readonly o: AdamOptions) {}

  get stepCount(): number { return this.t; }

  step(params: Params, grads: Params): void {
    const { lr } = this.o, b1 = this.o.beta1 ?? 0.9, b2 = this.o.beta2 ?? 0.999, eps = this.o.eps ?? 1e-8, wd = this.o.weightDecay ?? 0;
    this.t++;
    const bc1 = 1 - b1 ** this.t, bc2 = Math.sqrt(1 - b2 ** this.t);
    for (const [name, p] of Object.entries(params)) {
      const g = grads[name];
      if (!g || g.data.length !== p.data.length) throw new Error(`Adam: no gradient of the right size for ${name}`);
      let m = this.m.get(name), v = this.v.get(name);
      if (!m || !v) { m = new Float64Array(p.data.length); v = new Float64Array(p.data.length); this.m.set(name, m); this.v.set(name, v); }
      for (let i = 0; i < p.data.length; i++) {
        const gi = g.data[i]! + wd * p.data[i]!;
        m[i] = b1 * m[i]! + (1 - b1) * gi;
        v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
        p.data[i] = p.data[i]! - (lr / bc1) * (m[i]! / (Math.sqrt(v[i]!) / bc2 + eps));
      }
    }
  }

  stateTensors(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [name, m] of this.m) {
      out[`state.${name}.exp_avg`] = { shape: [m.length], data: Float32Array.from(m) };
      out[`state.${name}.exp_avg_sq`] = { shape: [m.length], data: Float32Array.from(this.v.get(name)!) };
    }
    return out;
  }

  loadState(tensors: Record<string, Tensor>, stepCount: number, file: string): void {
    this.m.clear();
    this.v.clear();
    for (const [key, t] of Object.entries(tensors)) {
      const m = /^state\.(.+)\.(exp_avg|exp_avg_sq)$/.exec(key);
      if (!m) continue;
      (m[2] === 'exp_avg' ? this.m : this.v).set(m[1]!, Float64Array.from(t.data));
    }
    for (const k of this.m.keys()) if (!this.v.has(k)) throw new FileFormatError(file, 'optimizer state has exp_avg without exp_avg_sq', `state.${k}.exp_avg_sq`);
    this.t = stepCount;
  }
}

/** torch.optim.SGD with optional momentum. */
export class SGD implements Optimizer {
  private buf = new Map<string, Float64Array>();
  private t = 0;
  constructor(readonly o: { lr: number; momentum?: number }) {}
  get stepCount(): number { return this.t; }
  step(params: Params, grads: Params): void {
    const mu = this.o.momentum ?? 0;
    this.t++;
    for (const [name, p] of Object.entries(params)) {
      const g = grads[name]!;
      let b = this.buf.get(name);
      if (mu && !b) { b = Float64Array.from(g.data); this.buf.set(name, b); } else if (mu && b) for (let i = 0; i < b.length; i++) b[i] = mu * b[i]! + g.data[i]!;
      for (let i = 0; i < p.data.length; i++) p.data[i] = p.data[i]! - this.o.lr * (mu ? b![i]! : g.data[i]!);
    }
  }
  stateTensors(): Record<string, Tensor> {
    return Object.fromEntries([...this.buf].map(([k, b]) => [`state.${k}.momentum_buffer`, { shape: [b.length], data: Float32Array.from(b) }]));
  }
  loadState(tensors: Record<string, Tensor>, stepCount: number): void {
    this.buf.clear();
    for (const [key, t] of Object.entries(tensors)) {
      const m = /^state\.(.+)\.momentum_buffer$/.exec(key);
      if (m) this.buf.set(m[1]!, Float64Array.from(t.data));
    }
    this.t = stepCount;
  }
}
