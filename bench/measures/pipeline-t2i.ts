/**
 * pipeline_t2i: the whole text-to-image pipeline (text encoder, 2 DDIM steps with CFG, VAE decode) on a
 * Checkpoint of random weights in low-memory mode, as the CLI runs it: wall time, phases, peak RSS against
 * the fp32 weights of UNet + VAE + text encoder (`ratio`, target <= 1.3).
 */
import { Checkpoint } from '../../src/components/checkpoint.js';
import { configureEngine } from '../../src/graph/session.js';
import { CLIPTokenizer } from '../../src/io/clip-tokenizer.js';
import { fmtGiB, fmtS, log, mib, ortOptionsField, peakRssMib, round, timedTextToImage, verdict, type Measure, type Options, type Result } from '../harness.js';
import { clipTextWeightTable, RandomWeights, unetWeightTable, vaeWeightTable } from '../random-weights.js';
import { randomComponent, SD15_SCHEDULER, SD15_TEXT, SD15_UNET, SD15_VAE, sd15TextConfig, sd15UnetConfig, sd15VaeConfig } from '../sd15.js';

const TARGET = 1.3;

async function pipelineBench(opts: Options): Promise<Result> {
  configureEngine({ lowMemory: true });
  const component = randomComponent;
  const unetRw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(sd15UnetConfig()));
  const vaeRw = new RandomWeights('random SD 1.5 VAE', vaeWeightTable(sd15VaeConfig()));
  const textRw = new RandomWeights('random CLIP ViT-L/14 text encoder', clipTextWeightTable(sd15TextConfig()));
  const sources = [unetRw, vaeRw, textRw];
  const ck = Checkpoint.fromSources('bench-sd15-random', {
    unet: component('unet', SD15_UNET, unetRw),
    vae: component('vae', SD15_VAE, vaeRw),
    text_encoder: component('text_encoder', SD15_TEXT, textRw),
  }, SD15_SCHEDULER, () => CLIPTokenizer.bundled());
  log(`pipeline_t2i: text-to-image ${opts.size * 8}x${opts.size * 8}, ${opts.steps} DDIM steps, CFG 7.5, low-memory mode (random weights made on read)`);
  const { px, steps, common } = await timedTextToImage('pipeline_t2i', opts, () => ck);
  const weightsMib = mib(sources.reduce((s, rw) => s + rw.parameterCount * 4, 0));
  const peak = peakRssMib();
  const weightsS = sources.reduce((s, rw) => s + rw.generateSeconds, 0);
  return {
    measure: 'pipeline_t2i',
    ...common,
    peak_rss_mib: Math.round(peak), build_s: null,
    weights_s: round(weightsS),
    weights_mib: Math.round(weightsMib),
    weights_read_mib: Math.round(mib(sources.reduce((s, rw) => s + rw.readBytes, 0))),
    ratio: round(peak / weightsMib),
    ...(opts.size === 64 ? { target_ratio: TARGET } : {}),
    ...ortOptionsField(opts),
    note: `textToImage ${px}x${px}, ${steps} DDIM steps, CFG 7.5, configureEngine({ lowMemory: true }); wall time includes session builds and ${weightsS.toFixed(1)} s of random-weight generation (weights_s, standing in for reading the checkpoint); step_times_s[0] includes the UNet build; ratio = peak_rss_mib / weights_mib`,
  };
}

export function describePipeline(r: Result): string {
  const ph = r.phases_s ?? {};
  return `${r.measure.padEnd(15)} ${fmtS(r.median_s)} cold (${r.steps} steps: encode ${fmtS(ph.encode ?? 0)}, denoise ${fmtS(ph.denoise ?? 0)} [steps ${(r.step_times_s ?? []).map(fmtS).join(', ')}], decode ${fmtS(ph.decode ?? 0)}; ` +
    `${fmtS(r.weights_s ?? 0)} of it random weights); peak RSS ${fmtGiB(r.peak_rss_mib)} = ${r.ratio!.toFixed(2)}x the fp32 weights of UNet + VAE + text encoder (${fmtGiB(r.weights_mib!)})${verdict(r.ratio!, r.target_ratio)}` +
    `; peak after encode / denoise / decode ${['encode', 'denoise', 'decode'].map((p) => fmtGiB(r.phase_rss_mib?.[p]?.peak ?? 0)).join(' / ')}${r.finite === false ? ' [output not finite!]' : ''}`;
}

export const pipelineT2i: Measure = { name: 'pipeline_t2i', ratioTarget: TARGET, run: pipelineBench, describe: describePipeline };
