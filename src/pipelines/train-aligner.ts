/**
 * Training the VCF aligner on image/caption pairs. Image tokens (vision last hidden state) and text
 * tokens / pooled text / masks are computed once and cached on disk next to the output (a safetensors
 * file read row by row), then Adam runs on batches of cached rows. Checkpoints hold the aligner, the
 * optimizer state and the position in the data, so a run can resume.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Checkpoint } from '../components/checkpoint.js';
import { InputError } from '../errors.js';
import { readImageRGB } from '../io/image.js';
import { readAllFloat32, SafetensorsFile, SafetensorsWriter, writeSafetensors } from '../io/safetensors.js';
import { ALIGNER_PARAMS, alignerParamShapes, alignerShapeOf, type AlignerParams, type AlignerShape } from '../methods/vcf/aligner.js';
import { alignerLossAndGrads } from '../methods/vcf/objective.js';
import { NativeGaussian } from '../noise/gaussian.js';
import { loadCaptionDataset } from '../training/caption-dataset.js';
import { Adam } from '../training/optimizers.js';
import type { Tensor } from '../tensor.js';
import { report, type RunControl } from './progress.js';

export interface TrainAlignerOptions extends RunControl {
  data: string;
  out: string;
  steps?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  /** Fraction of the pairs used (the paper: ~10% of COCO Captions), taken after a seeded shuffle. */
  fraction?: number;
  init?: string;
  shuffle?: boolean;
  seed?: number;
  hidden?: number;
  lambdaRec?: number;
  /** Continue from the optimizer state and step stored in `out`. */
  resume?: boolean;
  saveEvery?: number;
  /** diffusers' clip_skip for the captions' text tokens: train with the clip skip `fuse --clip-skip` will use. */
  clipSkip?: number;
  onLoss?: (step: number, loss: { loss: number; nce: number; rec: number }) => void;
  onWarning?: (m: string) => void;
}

export interface TrainAlignerResult {
  readonly steps: number;
  readonly losses: number[];
  readonly pairs: number;
  readonly missingImages: number;
  readonly truncatedCaptions: number;
  readonly cacheFile: string;
}

/** PyTorch's default init: Linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), LayerNorm ones/zeros. */
export function initialAligner(s: AlignerShape, seed: number): AlignerParams {
  const rng = new NativeGaussian(seed);
  const shapes = alignerParamShapes(s);
  const uniform = (shape: number[], bound: number): Tensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (2 * (rng.nextUint32() / 2 ** 32) - 1) * bound) });
  return {
    'norm.weight': { shape: shapes['norm.weight'], data: new Float32Array(s.dv).fill(1) },
    'norm.bias': { shape: shapes['norm.bias'], data: new Float32Array(s.dv) },
    'fc1.weight': uniform(shapes['fc1.weight'], 1 / Math.sqrt(s.dv)), 'fc1.bias': uniform(shapes['fc1.bias'], 1 / Math.sqrt(s.dv)),
    'fc2.weight': uniform(shapes['fc2.weight'], 1 / Math.sqrt(s.hidden)), 'fc2.bias': uniform(shapes['fc2.bias'], 1 / Math.sqrt(s.hidden)),
  };
}

function permutation(n: number, rng: NativeGaussian): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor((rng.nextUint32() / 2 ** 32) * (i + 1)); [p[i], p[j]] = [p[j]!, p[i]!]; }
  return p;
}

export async function trainAligner(ck: Checkpoint, o: TrainAlignerOptions): Promise<TrainAlignerResult> {
  const bs = o.batchSize ?? 64, lr = o.lr ?? 1e-4, seed = o.seed ?? 0, fraction = o.fraction ?? 1;
  if (!(fraction > 0 && fraction <= 1)) throw new InputError(`--fraction must be in (0, 1], got ${fraction}`);
  if (!Number.isInteger(bs) || bs < 1) throw new InputError(`--batch-size must be an integer >= 1, got ${bs}`);
  const ds = loadCaptionDataset(o.data);
  if (ds.missingImages) o.onWarning?.(`${ds.missingImages} pair(s) skipped: image file missing`);
  let pairs = ds.pairs;
  if (fraction < 1) { const p = permutation(pairs.length, new NativeGaussian(seed + 1)); pairs = p.slice(0, Math.ceil(fraction * pairs.length)).map((i) => pairs[i]!); }
  if (pairs.length < 2) throw new InputError(`the data has ${pairs.length} usable pair(s); InfoNCE needs at least 2 per batch`);
  const batchSize = Math.min(bs, pairs.length);

  // 1. Embeddings, computed once per (model, data, selection) and cached beside the output.
  const te = ck.textEncoder(), ie = ck.imageEncoder();
  const dt = te.config.hiddenSize, dv = ie.config.hiddenSize;
  const clipSkip = o.clipSkip ?? 0;
  // clip skip 0 keeps the key of caches written before the option existed
  const hash = crypto.createHash('sha256').update(JSON.stringify([ck.path, ds.source, fs.statSync(ds.source).mtimeMs, pairs.map((p) => [p.image, p.caption]), ...(clipSkip ? [{ clipSkip }] : [])])).digest('hex').slice(0, 16);
  const cacheFile = `${o.out}.embeddings-${hash}.safetensors`;
  let truncated = 0;
  if (!fs.existsSync(cacheFile)) {
    const tokens = (ie.config.imageSize / ie.config.patchSize) ** 2 + 1;
    const len = te.tokenizer.modelMaxLength;
    const tmp = `${cacheFile}.partial`;
    const w = new SafetensorsWriter(tmp, [
      { name: 'image_tokens', shape: [pairs.length, tokens, dv] }, { name: 'text_tokens', shape: [pairs.length, len, dt] },
      { name: 'pooled_text', shape: [pairs.length, dt] }, { name: 'attention_mask', shape: [pairs.length, len] },
    ], { model: ck.path, data: ds.source, pairs: String(pairs.length) });
    const chunk = 16;
    for (let s = 0; s < pairs.length; s += chunk) {
      report(o, 'embed', s, pairs.length);
      const part = pairs.slice(s, s + chunk);
      const img = await ie.encode(await Promise.all(part.map((p) => readImageRGB(p.image))));
      const txt = await te.encode(part.map((p) => p.caption), { clipSkip });
      truncated += txt.truncated.length;
      w.writeRows('image_tokens', s, img.lastHiddenState.data);
      w.writeRows('text_tokens', s, txt.lastHiddenState.data);
      w.writeRows('pooled_text', s, txt.poolerOutput.data);
      w.writeRows('attention_mask', s, Float32Array.from(part.flatMap((p) => te.tokenizer.encode(p.caption).attention_mask)));
    }
    w.close();
    fs.renameSync(tmp, cacheFile);
    report(o, 'embed', pairs.length, pairs.length);
    if (truncated) o.onWarning?.(`${truncated} caption(s) longer than 77 tokens were truncated`);
  }

  // 2. Parameters and optimizer: --init, --resume, or a seeded default init.
  const adam = new Adam({ lr });
  let params: AlignerParams;
  let start = 0;
  if (o.resume && fs.existsSync(o.out)) {
    const f = SafetensorsFile.open(o.out);
    const stepMeta = Number(f.metadata.step ?? NaN);
    f.close();
    const all = readAllFloat32(o.out);
    alignerShapeOf(all, o.out, { dv, dt });
    if (!Number.isInteger(stepMeta)) throw new InputError(`${o.out} has no training state to resume (no "step" metadata); use --init to start from its weights`);
    params = Object.fromEntries(ALIGNER_PARAMS.map((n) => [n, all[n]!])) as AlignerParams;
    adam.loadState(all, stepMeta, o.out);
    start = stepMeta;
  } else if (o.init) {
    const all = readAllFloat32(o.init);
    alignerShapeOf(all, o.init, { dv, dt });
    params = Object.fromEntries(ALIGNER_PARAMS.map((n) => [n, { shape: all[n]!.shape, data: all[n]!.data.slice() }])) as AlignerParams;
  } else {
    params = initialAligner({ dv, hidden: o.hidden ?? dt, dt }, seed);
  }
  const shape = alignerShapeOf(params, o.init ?? o.out, { dv, dt });

  // 3. Adam over batches (epoch-wise permutations, or file order with --no-shuffle).
  const perEpoch = Math.floor(pairs.length / batchSize);
  const total = o.steps ?? (o.epochs ?? 1) * perEpoch;
  const cache = SafetensorsFile.open(cacheFile);
  const losses: number[] = [];
  let status: string | undefined;
  const save = (step: number): void => writeSafetensors(o.out, { ...params, ...adam.stateTensors() }, {
    format: 'visprompt-vcf-aligner', model: ck.path, image_dim: String(shape.dv), hidden_dim: String(shape.hidden), text_dim: String(shape.dt),
    step: String(step), lr: String(lr), batch_size: String(batchSize), data: ds.source, clip_skip: String(clipSkip),
  });
  try {
    for (let step = start; step < total; step++) {
      report(o, 'train', step - start, total - start, status);
      const epoch = Math.floor(step / perEpoch), k = step % perEpoch;
      const order = o.shuffle === false ? null : permutation(pairs.length, new NativeGaussian(seed * 1000003 + epoch));
      const idx = Array.from({ length: batchSize }, (_, j) => (order ? order[k * batchSize + j]! : k * batchSize + j));
      const rowsOf = (name: string): Tensor => {
        const parts = idx.map((i) => cache.readRows(name, i, 1));
        const inner = parts[0]!.shape.slice(1);
        const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
        let off = 0;
        for (const p of parts) { data.set(p.data, off); off += p.data.length; }
        return { shape: [batchSize, ...inner], data };
      };
      const r = await alignerLossAndGrads(shape, params, { imageTokens: rowsOf('image_tokens'), textTokens: rowsOf('text_tokens'), pooledText: rowsOf('pooled_text'), attentionMask: rowsOf('attention_mask') }, { lambdaRec: o.lambdaRec });
      if (!Number.isFinite(r.loss)) throw new InputError(`the loss became ${r.loss} at step ${step + 1}; lower --lr`);
      adam.step(params, r.grads);
      losses.push(r.loss);
      status = `loss ${r.loss.toFixed(4)}`;
      o.onLoss?.(step + 1, r);
      if (o.saveEvery && (step + 1) % o.saveEvery === 0) save(step + 1);
    }
  } finally {
    cache.close();
  }
  report(o, 'train', total - start, total - start, status);
  save(total);
  return { steps: total - start, losses, pairs: pairs.length, missingImages: ds.missingImages, truncatedCaptions: truncated, cacheFile };
}
