/** The aligner's training objective compiled once per batch shape: loss terms and d loss / d every parameter. */
import { gradients } from '../../graph/autodiff.js';
import { Graph } from '../../graph/ir.js';
import { compile } from '../../graph/session.js';
import type { Tensor } from '../../tensor.js';
import { ALIGNER_PARAMS, alignerForward, alignerInputs, type AlignerParams, type AlignerShape } from './aligner.js';
import { vcfLoss } from './loss.js';

export interface AlignerBatch {
  /** Image tokens [B, N, Dv] */
  readonly imageTokens: Tensor;
  /** Text tokens [B, L, Dt] */
  readonly textTokens: Tensor;
  /** Pooled text [B, Dt] */
  readonly pooledText: Tensor;
  /** [B, L] 1 for real tokens */
  readonly attentionMask: Tensor;
}

export interface AlignerLoss {
  readonly loss: number;
  readonly nce: number;
  readonly rec: number;
  readonly grads: AlignerParams;
}

export async function alignerLossAndGrads(shape: AlignerShape, params: AlignerParams, batch: AlignerBatch, o: { lambdaRec?: number; tau?: number } = {}): Promise<AlignerLoss> {
  const key = `vcf-objective:${shape.dv}-${shape.hidden}-${shape.dt}:${batch.imageTokens.shape.join('x')}:${batch.textTokens.shape.join('x')}:${o.lambdaRec ?? 1}:${o.tau ?? 0.07}`;
  const session = await compile(key, () => {
    const g = new Graph('vcf_objective');
    const p = alignerInputs(g, shape);
    const y = g.input('image_tokens', batch.imageTokens.shape);
    const t = g.input('text_tokens', batch.textTokens.shape);
    const pooled = g.input('pooled_text', batch.pooledText.shape);
    const mask = g.input('attention_mask', batch.attentionMask.shape);
    const terms = vcfLoss(alignerForward(y, p), t, pooled, mask, o);
    g.output('loss', terms.total);
    g.output('nce', terms.nce);
    g.output('rec', terms.rec);
    gradients(g, terms.total, ALIGNER_PARAMS.map((n) => p[n])).forEach((d, i) => g.output(`grad.${ALIGNER_PARAMS[i]}`, d));
    return g;
  });
  const feeds = {
    ...Object.fromEntries(ALIGNER_PARAMS.map((n) => [`aligner.${n}`, params[n]])),
    image_tokens: batch.imageTokens, text_tokens: batch.textTokens, pooled_text: batch.pooledText, attention_mask: batch.attentionMask,
  };
  const r = await session.run(feeds);
  return {
    loss: r.loss!.data[0]!, nce: r.nce!.data[0]!, rec: r.rec!.data[0]!,
    grads: Object.fromEntries(ALIGNER_PARAMS.map((n) => [n, r[`grad.${n}`]!])) as AlignerParams,
  };
}
