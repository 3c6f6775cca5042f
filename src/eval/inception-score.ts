/**
 * Inception Score (Salimans et al. 2016), as torchmetrics 1.4 `InceptionScore.compute` evaluates it:
 * logits = pool3 features x fc.weight^T (the TF graph's 1008-class head WITHOUT its bias: OpenAI's
 * inception_score.py and torch-fidelity's "logits_unbiased"), the rows shuffled by torch.randperm(N)
 * (torchmetrics draws it from the global generator: here one seeded with `seed`, as
 * `torch.manual_seed(seed)` right before compute), p(y|x) = softmax, split into `splits` chunks
 * (torch.chunk: ceil(N / splits) rows each, the last one shorter), per chunk
 * exp(mean_x KL(p(y|x) || mean_x p(y|x))), then the mean and the unbiased standard deviation (torch.std)
 * over the chunks. Float64 arithmetic.
 *
 * The pool3 features are pytorch-fid's (bilinear 299 resize, 2x - 1); torchmetrics feeds torch-fidelity's
 * extractor (TF1-style resize, (x - 128) / 128), so on images that are not 299x299 the two differ by the
 * resize, as FID implementations do.
 */
import { InputError } from '../errors.js';
import { torchRandperm } from '../noise/randperm.js';
import { TorchGenerator } from '../noise/torch-generator.js';

export interface InceptionScoreOptions { splits?: number; seed?: number | bigint; shuffle?: boolean }

/** logits [N, C] = features [N, D] x W^T, W = fc.weight [C, D] row-major. */
export function inceptionLogits(features: readonly Float32Array[], fcWeight: Float32Array, classes: number): Float64Array[] {
  return features.map((f) => {
    const d = f.length;
    if (fcWeight.length !== classes * d) throw new InputError(`Inception Score: fc.weight holds ${fcWeight.length} values, expected ${classes} x ${d}`);
    const out = new Float64Array(classes);
    for (let c = 0; c < classes; c++) { let s = 0; for (let k = 0; k < d; k++) s += f[k]! * fcWeight[c * d + k]!; out[c] = s; }
    return out;
  });
}

export function inceptionScore(logits: readonly ArrayLike<number>[], o: InceptionScoreOptions = {}): { isMean: number; isStd: number } {
  const n = logits.length, splits = o.splits ?? 10;
  if (!Number.isInteger(splits) || splits < 1) throw new InputError(`Inception Score: splits ${splits}: expected an integer >= 1`);
  if (n < 1) throw new InputError('Inception Score: no images');
  const order = o.shuffle === false ? Array.from({ length: n }, (_, i) => i) : torchRandperm(new TorchGenerator(o.seed ?? 123), n);
  // log-softmax per row (max-shifted)
  const logp = order.map((i) => {
    const l = logits[i]!, c = l.length;
    let m = -Infinity;
    for (let k = 0; k < c; k++) m = Math.max(m, l[k]!);
    let z = 0;
    for (let k = 0; k < c; k++) z += Math.exp(l[k]! - m);
    const lz = m + Math.log(z);
    return Float64Array.from({ length: c }, (_, k) => l[k]! - lz);
  });
  const size = Math.ceil(n / splits);
  const scores: number[] = [];
  for (let s = 0; s < n; s += size) {
    const part = logp.slice(s, s + size), c = part[0]!.length;
    const marginal = new Float64Array(c);
    for (const r of part) for (let k = 0; k < c; k++) marginal[k] += Math.exp(r[k]!) / part.length;
    let kl = 0;
    // A probability that underflowed to 0 adds its limit 0 (torch's formula would give 0 * inf = NaN).
    for (const r of part) for (let k = 0; k < c; k++) { const p = Math.exp(r[k]!); if (p > 0) kl += p * (r[k]! - Math.log(marginal[k]!)); }
    scores.push(Math.exp(kl / part.length));
  }
  const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
  const std = scores.length > 1 ? Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / (scores.length - 1)) : NaN;
  return { isMean: mean, isStd: std };
}
