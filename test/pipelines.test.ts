import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { readImageRGB } from '../src/io/image.js';
import { invert } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { concatRows, type Tensor } from '../src/tensor.js';
import { close, golden, goldenPath, MODELS, modelDir } from './helpers.js';

for (const m of MODELS) {
  const meta = JSON.parse(fs.readFileSync(goldenPath(m, 'pipeline_t2i.json'), 'utf8')) as {
    num_inference_steps: number; width: number; height: number;
    cases: { prefix: string; guidance_scale: number; negative_prompt: string | null; prompt: string }[];
  };
  for (const c of meta.cases) {
    test(`text-to-image parity with StableDiffusionPipeline (${m}, guidance ${c.guidance_scale}): every step, final latents, image`, async () => {
      const gold = golden(m, 'pipeline_t2i');
      const ck = openCheckpoint(modelDir(m));
      const steps: Tensor[] = [];
      const r = await textToImage(ck, {
        prompt: c.prompt, negativePrompt: c.negative_prompt ?? undefined, steps: meta.num_inference_steps, guidance: c.guidance_scale,
        width: meta.width, height: meta.height, latents: gold.latents_in!, onStepEnd: (_i, _t, l) => steps.push(l),
      });
      const errs = steps.map((l, i) => close(l, gold[`${c.prefix}.step_${i}.latents_after`]!, 1e-4, `step ${i}`));
      const fin = close(r.latents, gold[`${c.prefix}.final_latents`]!, 1e-4, 'final latents');
      const img = gold[`${c.prefix}.image_np`]!;
      let worst = 0;
      for (let i = 0; i < img.data.length; i++) worst = Math.max(worst, Math.abs(r.images[0]!.data[i]! - Math.round(img.data[i]! * 255)));
      assert.ok(worst <= 1, `uint8 image differs by ${worst}`);
      console.log(`${m} ${c.prefix}: steps max abs err ${errs.map((e) => e.toExponential(1)).join(' ')}, final ${fin.toExponential(1)}, image uint8 max diff ${worst}`);
    });
  }

  test(`DDIM inversion parity (${m}): whole chain`, async () => {
    const gold = golden(m, 'ddim_inversion');
    const meta = JSON.parse(fs.readFileSync(goldenPath(m, 'ddim_inversion.json'), 'utf8')) as { prompt: string; num_inference_steps: number; timesteps: number[] };
    const ck = openCheckpoint(modelDir(m));
    const inv = await invert(ck, await readImageRGB(goldenPath(m, 'inversion_input.png')), { prompt: meta.prompt, steps: meta.num_inference_steps });
    assert.deepEqual(inv.timesteps, meta.timesteps);
    const chain = concatRows(inv.chain);
    const err = close({ shape: [chain.shape[0]!, 1, ...chain.shape.slice(1)], data: chain.data }, gold.chain!, 1e-4, 'chain');
    console.log(`${m} inversion chain max abs err ${err.toExponential(1)}`);
  });
}
