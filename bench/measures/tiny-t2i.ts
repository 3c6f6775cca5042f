/** tiny_sd15_t2i, tiny_sd21_t2i: the tiny test models end to end (4 DDIM steps, 64x64, CFG), a sanity line. */
import path from 'node:path';
import { openCheckpoint } from '../../src/components/checkpoint.js';
import { NativeGaussian } from '../../src/noise/gaussian.js';
import { textToImage } from '../../src/pipelines/text-to-image.js';
import { hasNonFinite } from '../../src/tensor.js';
import { log, median, now, peakRssMib, round, TINY_MODELS, type Measure, type Options, type Result } from '../harness.js';

/** The tiny test models end to end: text-to-image, 4 DDIM steps, 64x64, guidance 7.5 (text, UNet x4, VAE). */
async function tinyBench(measure: string, opts: Options): Promise<Result> {
  const model = measure === 'tiny_sd21_t2i' ? 'tiny-sd21' : 'tiny-sd15';
  const ck = openCheckpoint(path.join(TINY_MODELS, model));
  const run = (): ReturnType<typeof textToImage> => textToImage(ck, {
    prompt: 'a photograph of an astronaut riding a horse', steps: 4, guidance: 7.5, width: 64, height: 64, noise: new NativeGaussian(0),
  });
  log(`${measure}: first run (load + compile + run)`);
  const t0 = now();
  let r = await run();
  const first = now() - t0;
  const runs = opts.runs ?? 3;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = now();
    r = await run();
    times.push(now() - t);
  }
  return {
    measure, median_s: round(median(times)), min_s: round(Math.min(...times)), gflops: null, peak_rss_mib: Math.round(peakRssMib()),
    build_s: null, first_call_s: round(first), runs, times_s: times.map((t) => round(t)), flops: null,
    finite: !hasNonFinite(r.latents), threads: opts.threads ?? 'default',
    note: `${model}: 4 DDIM steps, 64x64, CFG; first_call_s = cold (load + compile + run)`,
  };
}

export const tinySd15T2i: Measure = { name: 'tiny_sd15_t2i', run: (opts) => tinyBench('tiny_sd15_t2i', opts) };
export const tinySd21T2i: Measure = { name: 'tiny_sd21_t2i', run: (opts) => tinyBench('tiny_sd21_t2i', opts) };
