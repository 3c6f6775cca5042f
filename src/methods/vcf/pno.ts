/**
 * Prompt-Noise Optimization (VCF, seed 000): the gradient of loss = 1 - cos(CLIP(x), CLIP(reference))
 * with respect to the initial noise z_T and the fused conditioning c, through N DDIM steps with
 * classifier-free guidance ([u; c] rows) and the VAE decoder. Two ways to differentiate the chain:
 *  - checkpointing (default): the forward pass keeps only the latents; the backward pass runs one
 *    vector-Jacobian graph per UNet call, which recomputes that call (memory of one UNet call);
 *  - whole graph: the chain is one graph and ONNX Runtime keeps every activation (faster, memory grows
 *    with the number of steps).
 * The DDIM step is linear in (z, model output), z' = A z + B out, so its backward is two scalars per step.
 */
import type { Checkpoint } from '../../components/checkpoint.js';
import { unetVJP, type AddedConditioning } from '../../components/unet.js';
import { gradients } from '../../graph/autodiff.js';
import { Graph, type Value } from '../../graph/ir.js';
import * as op from '../../graph/ops.js';
import { compile } from '../../graph/session.js';
import { vaeDecode } from '../../models/autoencoder-kl.js';
import { unet2DConditionModel } from '../../models/unet2d-condition.js';
import { classifierFreeGuidance } from '../../pipelines/guidance.js';
import { DDIMScheduler } from '../../schedulers/ddim.js';
import { InputError } from '../../errors.js';
import { concatRows, rows, type Tensor } from '../../tensor.js';
import { clipPixels, cosineDistance, type ImageFeatureTower } from '../clip-guidance.js';

export interface PnoProblem {
  /** [1, C, h, w] */
  readonly zT: Tensor;
  /** Conditional embedding [1, L, D] (text tokens, possibly fused with aligned image tokens). */
  readonly c: Tensor;
  /** Unconditional embedding [1, L, D]. */
  readonly u: Tensor;
  readonly steps: number;
  readonly guidance: number;
  /** CLIP features of the reference image [1, F]. */
  readonly reference: Tensor;
  /**
   * SDXL's added conditioning of the [u; c] rows (pooled text [2, P], time ids [2, 6]); held fixed: only
   * the token embeddings c are optimized.
   */
  readonly added?: AddedConditioning;
}

export interface PnoResult {
  readonly loss: number;
  readonly gradZT: Tensor;
  readonly gradC: Tensor;
  readonly finalLatents: Tensor;
}

const f = Math.fround;

/** z_next = A z + B out for the DDIM step (eta 0) at t, for the scheduler's prediction type. */
export function stepCoefficients(s: DDIMScheduler, t: number): { A: number; B: number } {
  const a = s.alphasCumprod[t]!, ap = s.alphaProd(s.prevTimestep(t));
  const sa = Math.sqrt(a), sb = Math.sqrt(1 - a), sap = Math.sqrt(ap), sbp = Math.sqrt(1 - ap);
  switch (s.config.predictionType) {
    case 'epsilon': return { A: sap / sa, B: sbp - (sap * sb) / sa };
    case 'v_prediction': return { A: sap * sa + sbp * sb, B: sbp * sa - sap * sb };
    case 'sample': return { A: sbp / sb, B: sap - (sbp * sa) / sb };
  }
}

function scheduler(ck: Checkpoint, steps: number): DDIMScheduler {
  const cfg = ck.schedulerConfig();
  const s = new DDIMScheduler(cfg.raw, { source: cfg.file });
  if (s.config.clipSample) throw new InputError(`--pno-steps: Prompt-Noise Optimization differentiates through DDIM steps without sample clipping; ${cfg.file} has clip_sample true (expected false)`);
  s.setTimesteps(steps);
  return s;
}

/** The tail: decode z_0, CLIP features, 1 - cos with the reference. */
function tail(ck: Checkpoint, tower: ImageFeatureTower, z0: Value, ref: Value): Value {
  const vae = ck.vae();
  const x = vaeDecode(op.div(z0, vae.config.scalingFactor), vae.weights, vae.config);
  return op.reduceSum(cosineDistance(tower.features(clipPixels(x, tower)), ref), [0], false);
}

async function checkpointed(ck: Checkpoint, tower: ImageFeatureTower, p: PnoProblem): Promise<PnoResult> {
  const s = scheduler(ck, p.steps);
  const unet = ck.unet();
  const ctx = concatRows([p.u, p.c]);
  const added = p.added ? { addedCond: p.added } : {};
  const zs: Tensor[] = [p.zT];
  let z = p.zT;
  for (const t of s.timesteps) {
    const { noisePred } = await unet.run({ sample: concatRows([z, z]), timestep: t, encoderHiddenStates: ctx, ...added });
    const g = classifierFreeGuidance(rows(noisePred, 0).data, rows(noisePred, 1).data, p.guidance);
    z = { shape: z.shape, data: s.step(g, t, z.data).prevSample };
    zs.push(z);
  }
  const session = await compile(`pno-tail:${ck.path}:${tower.id}:${z.shape.join('x')}`, () => {
    const g = new Graph('pno_tail');
    const z0 = g.input('z0', z.shape);
    const ref = g.input('reference', p.reference.shape);
    const loss = tail(ck, tower, z0, ref);
    g.output('loss', loss);
    g.output('d_z0', gradients(g, loss, [z0])[0]!);
    return g;
  });
  const r = await session.run({ z0: z, reference: p.reference });
  let dz = r.d_z0!.data.slice();
  const dc = new Float32Array(p.c.data.length);
  const w = f(p.guidance);
  for (let i = s.timesteps.length - 1; i >= 0; i--) {
    const t = s.timesteps[i]!;
    const { A, B } = stepCoefficients(s, t);
    const cot = new Float32Array(2 * dz.length);
    for (let j = 0; j < dz.length; j++) { const dg = B * dz[j]!; cot[j] = (1 - w) * dg; cot[dz.length + j] = w * dg; }
    const zi = zs[i]!;
    const v = await unetVJP(unet, { sample: concatRows([zi, zi]), timestep: t, encoderHiddenStates: ctx, ...added }, { shape: [2, ...zi.shape.slice(1)], data: cot });
    const next = new Float32Array(dz.length);
    for (let j = 0; j < dz.length; j++) next[j] = A * dz[j]! + v.dSample.data[j]! + v.dSample.data[dz.length + j]!;
    const dctx = v.dEncoderHiddenStates!.data;
    for (let j = 0; j < dc.length; j++) dc[j] = dc[j]! + dctx[dc.length + j]!;
    dz = next;
  }
  return { loss: r.loss!.data[0]!, gradZT: { shape: p.zT.shape, data: dz }, gradC: { shape: p.c.shape, data: dc }, finalLatents: z };
}

async function wholeGraph(ck: Checkpoint, tower: ImageFeatureTower, p: PnoProblem): Promise<PnoResult> {
  const s = scheduler(ck, p.steps);
  const unet = ck.unet();
  const session = await compile(`pno-whole:${ck.path}:${tower.id}:${p.zT.shape.join('x')}:${p.c.shape.join('x')}:${p.steps}:${p.guidance}`, () => {
    const g = new Graph('pno');
    const zT = g.input('z_T', p.zT.shape);
    const c = g.input('c', p.c.shape);
    const u = g.input('u', p.u.shape);
    const ref = g.input('reference', p.reference.shape);
    const ctx = op.concat([u, c], 0);
    const addedCond = p.added ? { textEmbeds: g.input('text_embeds', p.added.textEmbeds.shape), timeIds: g.input('time_ids', p.added.timeIds.shape) } : undefined;
    let z: Value = zT;
    for (const t of s.timesteps) {
      const out = unet2DConditionModel({ sample: op.concat([z, z], 0), timestep: op.constFloat(g, [2], new Float32Array([t, t]), 't'), encoderHiddenStates: ctx, ...(addedCond ? { addedCond } : {}) }, unet.weights, unet.config);
      const [eu, ec] = op.chunk(out, 2, 0) as [Value, Value];
      const guided = op.add(eu, op.mul(op.sub(ec, eu), p.guidance));
      const { A, B } = stepCoefficients(s, t);
      z = op.add(op.mul(z, A), op.mul(guided, B));
    }
    const loss = tail(ck, tower, z, ref);
    g.output('loss', loss);
    g.output('final_latents', z);
    const [dz, dc] = gradients(g, loss, [zT, c]);
    g.output('d_z_T', dz!);
    g.output('d_c', dc!);
    return g;
  });
  const r = await session.run({ z_T: p.zT, c: p.c, u: p.u, reference: p.reference, ...(p.added ? { text_embeds: p.added.textEmbeds, time_ids: p.added.timeIds } : {}) });
  return { loss: r.loss!.data[0]!, gradZT: r.d_z_T!, gradC: r.d_c!, finalLatents: r.final_latents! };
}

/** Loss and gradients of one PNO iteration. */
export function pnoLossAndGrads(ck: Checkpoint, tower: ImageFeatureTower, p: PnoProblem, o: { checkpointing?: boolean } = {}): Promise<PnoResult> {
  return o.checkpointing === false ? wholeGraph(ck, tower, p) : checkpointed(ck, tower, p);
}
