/** `inject` (InjectFusion content injection) and `edit` (Asyrp attribute editing) in h-space. */
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { readImageRGB } from '../../io/image.js';
import { createNoise, type NoiseKind } from '../../noise/gaussian.js';
import { edit } from '../../pipelines/edit.js';
import { inject } from '../../pipelines/inject.js';
import type { GeneratedImages } from '../../pipelines/common.js';
import { EDIT_OPTIONS, INJECT_OPTIONS } from '../../params/job-options.js';
import { addOptions } from '../../params/option-spec.js';
import { saveTensors, writeImages } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { openModel } from '../model.js';
import { ProgressReporter } from '../progress.js';
import { PreviewWriter } from '../previews.js';
import { parametersChunk } from '../png-parameters.js';
import type { OptionSpecs } from '../../params/option-spec.js';
import type { Checkpoint } from '../../components/checkpoint.js';
import type { PreviewOptions } from '../../pipelines/preview.js';

interface Common { model: string; prompt?: string; clipSkip?: number; steps: number; seed?: number | bigint; noise: NoiseKind; saveLatents?: string; vaeTiny?: string; out: string; previewEvery?: number }

async function finish(o: Common, r: GeneratedImages, progress: ProgressReporter, params: Record<string, unknown>, g: GlobalOptions, previews: PreviewWriter, specs: OptionSpecs): Promise<void> {
  const quiet = g.quiet;
  if (o.saveLatents) saveTensors(o.saveLatents, { latents: r.latents });
  const files = await writeImages(o.out, r.images, parametersChunk(specs, o, g, { ...params, prompt: o.prompt ?? null, steps: o.steps, model: o.model }));
  const previewFiles = await previews.flush();
  progress.done();
  if (!quiet) process.stderr.write(`wrote ${files.join(', ')}${previewFiles.length ? ` and ${previewFiles.length} previews` : ''}\n`);
}

/** --preview-every: previews of the x0 prediction, decoded by --vae-tiny when given. */
function previewOf(o: Common, ck: Checkpoint): PreviewOptions | undefined {
  return o.previewEvery ? { every: o.previewEvery, decoder: o.vaeTiny !== undefined ? ck.autoencoder() : undefined } : undefined;
}

export function registerHSpaceCommands(program: Command, globals: () => GlobalOptions): void {
  addOptions(program.command('inject').description('InjectFusion: inject the content image\'s h-space into the original image\'s generative process (DDIM inversion and DDIM sampling, as the method\'s code)'), INJECT_OPTIONS)
    .action(async (o: Common & { image: string; content: string; tEdit: number; gamma?: number; gammaRamp?: [number, number]; omega: number; mask?: string; tNoise: number; dtLambda: number }) => {
      if (o.gamma !== undefined && o.gammaRamp) throw new InputError('give --gamma or --gamma-ramp, not both');
      const progress = new ProgressReporter(globals().quiet);
      const ck = openModel(o.model, globals(), o);
      const previews = new PreviewWriter(o.out);
      const s = o.seed ?? Math.floor(Math.random() * 2 ** 32);
      const r = await inject(ck, {
        original: await readImageRGB(o.image), content: await readImageRGB(o.content), prompt: o.prompt, clipSkip: o.clipSkip, steps: o.steps, tEdit: o.tEdit,
        gamma: o.gammaRamp ?? o.gamma ?? 0.5, omega: o.omega, mask: o.mask ? await readImageRGB(o.mask) : undefined, tNoise: o.tNoise,
        dtLambda: o.dtLambda, noise: createNoise(o.noise, s), onProgress: previews.listener(progress.onProgress), onWarning: (m) => progress.warn(m), preview: previewOf(o, ck),
      });
      await finish(o, r, progress, { method: 'injectfusion', image: o.image, content: o.content, t_edit: o.tEdit, gamma: o.gammaRamp ?? o.gamma ?? 0.5, omega: o.omega, seed: String(s) }, globals(), previews, INJECT_OPTIONS);
    });

  addOptions(program.command('edit').description('Asyrp: edit an image with an attribute network (DeltaBlock) in h-space (DDIM inversion and DDIM sampling, as the method\'s code)'), EDIT_OPTIONS)
    .action(async (o: Common & { image: string; attribute: string; strength: number; tEdit: number; tBoost: number }) => {
      const progress = new ProgressReporter(globals().quiet);
      const ck = openModel(o.model, globals(), o);
      const previews = new PreviewWriter(o.out);
      const s = o.seed ?? Math.floor(Math.random() * 2 ** 32);
      const r = await edit(ck, {
        image: await readImageRGB(o.image), attribute: o.attribute, prompt: o.prompt, clipSkip: o.clipSkip, steps: o.steps, strength: o.strength, tEdit: o.tEdit,
        tBoost: o.tBoost, noise: createNoise(o.noise, s), onProgress: previews.listener(progress.onProgress), onWarning: (m) => progress.warn(m), preview: previewOf(o, ck),
      });
      await finish(o, r, progress, { method: 'asyrp', image: o.image, attribute: o.attribute, strength: o.strength, t_edit: o.tEdit, t_boost: o.tBoost, seed: String(s) }, globals(), previews, EDIT_OPTIONS);
    });
}
