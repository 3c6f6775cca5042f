/**
 * A narrow random-weight pytorch-fid InceptionV3 written at test time: every key of the
 * pt_inception-2015-12-05 layout (Conv2d_1a_3x3 ... Mixed_7c, fc), the real kernel sizes, strides and
 * branch topology, but `width` output channels per convolution instead of 32..384, so pool3 has
 * 6 x width features and a 299x299 image runs in milliseconds. FIDInception reads the channel counts
 * from the weights, so the benchmark's FID / KID / IS path runs on it unchanged; the full-width network
 * (48 MB even with random weights) is not in test/fixtures. Its values pin the plumbing, not
 * pytorch-fid's numbers (eval-metrics.test pins those where the fixtures allow).
 */
import { writeSafetensors } from '../src/io/safetensors.js';
import type { Tensor } from '../src/tensor.js';

export function writeNarrowInception(file: string, o: { width?: number; classes?: number; seed?: number } = {}): { dims: number; classes: number } {
  const w = o.width ?? 4, classes = o.classes ?? 5;
  let s = o.seed ?? 1;
  const rnd = (): number => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 - 0.5; };
  const t: Record<string, Tensor> = {};
  const fill = (shape: number[], f: () => number): Tensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
  /** BasicConv2d: `w` output channels; He-like scale so activations stay O(1) through 90-odd ReLU layers. */
  const conv = (name: string, inC: number, kh: number, kw: number): number => {
    const scale = Math.sqrt(24 / (inC * kh * kw));
    t[`${name}.conv.weight`] = fill([w, inC, kh, kw], () => rnd() * scale);
    t[`${name}.bn.weight`] = fill([w], () => 1 + 0.2 * rnd());
    t[`${name}.bn.bias`] = fill([w], () => 0.2 * rnd());
    t[`${name}.bn.running_mean`] = fill([w], () => 0.1 * rnd());
    t[`${name}.bn.running_var`] = fill([w], () => 1 + 0.2 * rnd());
    return w;
  };
  conv('Conv2d_1a_3x3', 3, 3, 3); conv('Conv2d_2a_3x3', w, 3, 3); conv('Conv2d_2b_3x3', w, 3, 3);
  conv('Conv2d_3b_1x1', w, 1, 1); conv('Conv2d_4a_3x3', w, 3, 3);
  let c = w;
  const a = (m: string, inC: number): number => {
    conv(`${m}.branch1x1`, inC, 1, 1); conv(`${m}.branch5x5_1`, inC, 1, 1); conv(`${m}.branch5x5_2`, w, 5, 5);
    conv(`${m}.branch3x3dbl_1`, inC, 1, 1); conv(`${m}.branch3x3dbl_2`, w, 3, 3); conv(`${m}.branch3x3dbl_3`, w, 3, 3);
    conv(`${m}.branch_pool`, inC, 1, 1);
    return 4 * w;
  };
  const cc = (m: string, inC: number): number => {
    conv(`${m}.branch1x1`, inC, 1, 1);
    conv(`${m}.branch7x7_1`, inC, 1, 1); conv(`${m}.branch7x7_2`, w, 1, 7); conv(`${m}.branch7x7_3`, w, 7, 1);
    conv(`${m}.branch7x7dbl_1`, inC, 1, 1); conv(`${m}.branch7x7dbl_2`, w, 7, 1); conv(`${m}.branch7x7dbl_3`, w, 1, 7);
    conv(`${m}.branch7x7dbl_4`, w, 7, 1); conv(`${m}.branch7x7dbl_5`, w, 1, 7);
    conv(`${m}.branch_pool`, inC, 1, 1);
    return 4 * w;
  };
  const e = (m: string, inC: number): number => {
    conv(`${m}.branch1x1`, inC, 1, 1);
    conv(`${m}.branch3x3_1`, inC, 1, 1); conv(`${m}.branch3x3_2a`, w, 1, 3); conv(`${m}.branch3x3_2b`, w, 3, 1);
    conv(`${m}.branch3x3dbl_1`, inC, 1, 1); conv(`${m}.branch3x3dbl_2`, w, 3, 3); conv(`${m}.branch3x3dbl_3a`, w, 1, 3); conv(`${m}.branch3x3dbl_3b`, w, 3, 1);
    conv(`${m}.branch_pool`, inC, 1, 1);
    return 6 * w;
  };
  for (const m of ['Mixed_5b', 'Mixed_5c', 'Mixed_5d']) c = a(m, c);
  // Mixed_6a (InceptionB): two conv branches + the max-pooled input
  conv('Mixed_6a.branch3x3', c, 3, 3); conv('Mixed_6a.branch3x3dbl_1', c, 1, 1); conv('Mixed_6a.branch3x3dbl_2', w, 3, 3); conv('Mixed_6a.branch3x3dbl_3', w, 3, 3);
  c = 2 * w + c;
  for (const m of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) c = cc(m, c);
  // Mixed_7a (InceptionD)
  conv('Mixed_7a.branch3x3_1', c, 1, 1); conv('Mixed_7a.branch3x3_2', w, 3, 3);
  conv('Mixed_7a.branch7x7x3_1', c, 1, 1); conv('Mixed_7a.branch7x7x3_2', w, 1, 7); conv('Mixed_7a.branch7x7x3_3', w, 7, 1); conv('Mixed_7a.branch7x7x3_4', w, 3, 3);
  c = 2 * w + c;
  c = e('Mixed_7b', c);
  c = e('Mixed_7c', c);
  // The 1008-class head of the TF graph (here `classes`): Inception Score reads fc.weight (no bias).
  t['fc.weight'] = fill([classes, c], () => 30 * rnd());
  t['fc.bias'] = fill([classes], () => rnd());
  writeSafetensors(file, t);
  return { dims: c, classes };
}
