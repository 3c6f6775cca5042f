/**
 * The Asyrp attribute network's training objective (kwonminki/Asyrp_official; definitions as in
 * goldens/grads/asyrp.json): at a noisy x_t, h' = h + DeltaBlock(h, temb) in the edited UNet pass (skips
 * unchanged); x0' and x0 from eps(h') and eps(h); L_dir = 1 - cos(E_I(x0') - E_I(x0), direction), the
 * direction being E_T(target) - E_T(source) (or a visual/fused one); L_1 = mean |x0' - x0|;
 * L = lambda_dir L_dir + lambda_1 L_1, differentiated with respect to every DeltaBlock parameter.
 */
import type { Checkpoint } from '../components/checkpoint.js';
import { gradients } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { compile } from '../graph/session.js';
import { vaeDecode } from '../models/autoencoder-kl.js';
import { unet2DConditionModel } from '../models/unet2d-condition.js';
import { unet2DModel } from '../models/unet2d.js';
import type { UNetHooks } from '../models/hooks.js';
import type { Tensor } from '../tensor.js';
import { DDIMScheduler } from '../schedulers/ddim.js';
import { clipPixels, cosineDistance, type ImageFeatureTower } from './clip-guidance.js';
import { DELTA_PARAMS, deltaBlockOf, deltaParamShapes, type DeltaBlockConfig, type DeltaParamName } from './delta-block.js';

export type DeltaParams = Record<DeltaParamName, Tensor>;

export interface AsyrpSample {
  /** The noisy latent (or pixel sample) x_t, [1, C, h, w]. */
  readonly xt: Tensor;
  readonly timestep: number;
  /** Text conditioning [1, 77, D] for SD; undefined for pixel models. */
  readonly context?: Tensor;
  /** The CLIP-space edit direction [1, F] (E_T(target) - E_T(source), or a visual / fused one). */
  readonly direction: Tensor;
}

export interface AsyrpLoss {
  readonly loss: number;
  readonly dir: number;
  readonly l1: number;
  readonly grads: DeltaParams;
}

export async function asyrpLossAndGrads(ck: Checkpoint, tower: ImageFeatureTower, cfg: DeltaBlockConfig, params: DeltaParams, s: AsyrpSample, o: { lambdaDir?: number; lambdaL1?: number } = {}): Promise<AsyrpLoss> {
  const unet = ck.unet();
  const lambdaDir = o.lambdaDir ?? 1, lambdaL1 = o.lambdaL1 ?? 3;
  const shapes = deltaParamShapes(cfg);
  const key = `asyrp-objective:${ck.path}:${tower.id}:${s.xt.shape.join('x')}:${s.context?.shape.join('x') ?? '-'}:${lambdaDir}:${lambdaL1}`;
  const session = await compile(key, () => {
    const g = new Graph('asyrp_objective');
    const p = Object.fromEntries(DELTA_PARAMS.map((n) => [n, g.input(`delta.${n}`, shapes[n])])) as Record<DeltaParamName, Value>;
    const x = g.input('x_t', s.xt.shape);
    const t = g.input('timestep', [1]);
    const sa = g.input('sqrt_alpha', [1, 1, 1, 1]);
    const sb = g.input('sqrt_one_minus_alpha', [1, 1, 1, 1]);
    const dir = g.input('direction', s.direction.shape);
    const ctx = s.context ? g.input('context', s.context.shape) : undefined;
    const run = (hooks?: UNetHooks): Value => (unet.arch.kind === 'conditional'
      ? unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: ctx! }, unet.weights, unet.arch.unet, hooks)
      : unet2DModel(x, t, unet.weights, unet.arch.unet, hooks));
    const x0 = (eps: Value): Value => op.div(op.sub(x, op.mul(eps, sb)), sa);
    const plain = x0(run());
    const edited = x0(run({ midBlock: (h, temb) => op.add(h, deltaBlockOf(h, temb, p, cfg)) }));
    const image = (z: Value): Value => {
      if (ck.isPixelSpace()) return z;
      const vae = ck.vae();
      return vaeDecode(op.div(z, vae.config.scalingFactor), vae.weights, vae.config);
    };
    const feats = (z: Value): Value => tower.features(clipPixels(image(z), tower));
    const lDir = op.reduceSum(cosineDistance(op.sub(feats(edited), feats(plain)), dir), [0], false);
    const diff = op.sub(edited, plain);
    const l1 = op.reduceMean(op.abs(diff), [0, 1, 2, 3], false);
    const loss = op.add(op.mul(lDir, lambdaDir), op.mul(l1, lambdaL1));
    g.output('loss', loss);
    g.output('L_dir', lDir);
    g.output('L_1', l1);
    gradients(g, loss, DELTA_PARAMS.map((n) => p[n])).forEach((d, i) => g.output(`grad.${DELTA_PARAMS[i]}`, d));
    return g;
  });
  const scheduler = ck.schedulerConfig();
  const { a, b } = new DDIMScheduler(scheduler.raw, { source: scheduler.file }).sqrtAlphaProd(s.timestep);
  const r = await session.run({
    ...Object.fromEntries(DELTA_PARAMS.map((n) => [`delta.${n}`, params[n]])),
    x_t: s.xt, timestep: { shape: [1], data: new Float32Array([s.timestep]) },
    sqrt_alpha: { shape: [1, 1, 1, 1], data: new Float32Array([a]) }, sqrt_one_minus_alpha: { shape: [1, 1, 1, 1], data: new Float32Array([b]) },
    direction: s.direction, ...(s.context ? { context: s.context } : {}),
  });
  return {
    loss: r.loss!.data[0]!, dir: r.L_dir!.data[0]!, l1: r.L_1!.data[0]!,
    grads: Object.fromEntries(DELTA_PARAMS.map((n) => [n, r[`grad.${n}`]!])) as DeltaParams,
  };
}
