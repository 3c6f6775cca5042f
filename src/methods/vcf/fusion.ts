/**
 * Fusing aligned image tokens Yh [1, N, D] with the text tokens T [1, L, D] into one conditioning
 * sequence for the UNet's cross-attention (VCF, seed 000). visprompt's definitions:
 *  - concat (default, the paper's best): c = [T; Yh] (L + N tokens); unconditional u = [T(""); 0].
 *  - average: c_i = (T_i + mean_j Yh_j) / 2 for every text token i (L tokens).
 *  - cross-attention: c = (T + softmax(T Yh^T / sqrt(D)) Yh) / 2, text tokens reading the image
 *    tokens as in the aligner's reconstruction loss (L tokens).
 */
import { InputError } from '../../errors.js';
import type { Tensor } from '../../tensor.js';

export const FUSIONS = ['concat', 'average', 'cross-attention'] as const;
export type Fusion = (typeof FUSIONS)[number];

export function fuse(fusion: Fusion, text: Tensor, imageTokens: Tensor, uncondText: Tensor): { cond: Tensor; uncond: Tensor } {
  const [, l, d] = text.shape as [number, number, number];
  const n = imageTokens.shape[1]!;
  if (imageTokens.shape[2] !== d) throw new InputError(`aligned image tokens have width ${imageTokens.shape[2]} but the text embeddings ${d}`);
  const T = text.data, Y = imageTokens.data;
  switch (fusion) {
    case 'concat': {
      const cond = new Float32Array((l + n) * d);
      cond.set(T);
      cond.set(Y, l * d);
      const uncond = new Float32Array((l + n) * d);
      uncond.set(uncondText.data);
      return { cond: { shape: [1, l + n, d], data: cond }, uncond: { shape: [1, l + n, d], data: uncond } };
    }
    case 'average': {
      const mean = new Float64Array(d);
      for (let j = 0; j < n; j++) for (let k = 0; k < d; k++) mean[k] = mean[k]! + Y[j * d + k]! / n;
      const cond = Float32Array.from(T, (v, i) => (v + mean[i % d]!) / 2);
      return { cond: { shape: [1, l, d], data: cond }, uncond: uncondText };
    }
    case 'cross-attention': {
      const cond = new Float32Array(l * d);
      const scale = 1 / Math.sqrt(d);
      const scores = new Float64Array(n);
      for (let i = 0; i < l; i++) {
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += T[i * d + k]! * Y[j * d + k]!;
          scores[j] = s * scale;
          max = Math.max(max, scores[j]!);
        }
        let z = 0;
        for (let j = 0; j < n; j++) { scores[j] = Math.exp(scores[j]! - max); z += scores[j]!; }
        for (let k = 0; k < d; k++) {
          let r = 0;
          for (let j = 0; j < n; j++) r += (scores[j]! / z) * Y[j * d + k]!;
          cond[i * d + k] = (T[i * d + k]! + r) / 2;
        }
      }
      return { cond: { shape: [1, l, d], data: cond }, uncond: uncondText };
    }
    default:
      throw new InputError(`unknown fusion ${JSON.stringify(fusion)} (expected one of ${FUSIONS.join(', ')})`);
  }
}
