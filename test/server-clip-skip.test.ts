/**
 * The server's runner passes clipSkip (invert, vary, inject, edit, fuse) and fuse's IP-Adapter fields on to the
 * library: a job's result equals the library call with the same options, and clipSkip changes it. In process
 * (runJob with a models folder of tiny fixtures), 1-2 steps; the CLI side is test/cli-wiring.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Value } from 'typebox/value';
import { readImageRGB } from '../src/io/image.js';
import { readAllFloat32 } from '../src/io/safetensors.js';
import { createMethod } from '../src/methods/index.js';
import { createNoise } from '../src/noise/gaussian.js';
import { fuseGenerate } from '../src/pipelines/fuse.js';
import { inject } from '../src/pipelines/inject.js';
import { invert } from '../src/pipelines/invert.js';
import { vary } from '../src/pipelines/vary.js';
import { ModelCache } from '../src/server/models.js';
import { runJob, type RunContext } from '../src/server/runner.js';
import { JOB_SCHEMAS, type JobKind } from '../src/server/schemas.js';
import type { Uploads } from '../src/server/uploads.js';
import { concatRows, maxAbsDiff, type Tensor } from '../src/tensor.js';
import { goldenPath } from './helpers.js';
import { modelsFolder, REFERENCE_PNG, tmpDir } from './server-helpers.js';

const root = modelsFolder();
const OTHER_PNG = goldenPath('tiny-sd15', 'vae_input.png');
const uploads = { pathOf: (id: string) => (id === 'other' ? OTHER_PNG : REFERENCE_PNG) } as unknown as Uploads;
const models = new ModelCache(root, 1 << 30);
const out = tmpDir('clip-skip-jobs');
process.on('exit', () => { fs.rmSync(out, { recursive: true, force: true }); fs.rmSync(root, { recursive: true, force: true }); });
let n = 0;

/** A job's result tensor (the chain of invert, the latents of the others), its parameters filled in as the server does. */
async function job(kind: JobKind, params: Record<string, unknown>): Promise<Tensor> {
  const ctx: RunContext = { models, uploads, folder: path.join(out, `job-${n++}`) };
  const p = Value.Default(JOB_SCHEMAS[kind], { model: 'tiny-sd15', image: 'ref', ...(kind === 'invert' ? {} : { seed: 5, saveLatents: true }), ...params }) as Record<string, unknown>;
  assert.ok(Value.Check(JOB_SCHEMAS[kind], p), `${kind}: a valid request`);
  await runJob(kind, p, ctx);
  const t = readAllFloat32(path.join(ctx.folder, kind === 'invert' ? 'chain.safetensors' : 'latents.safetensors'));
  return kind === 'invert' ? t.chain! : t.latents!;
}

const ck = () => models.checkpoint('tiny-sd15');
const same = (a: Tensor, b: Tensor, what: string): void => { const d = maxAbsDiff(a, b); assert.ok(d <= 1e-5, `${what}: job vs library ${d}`); };
const moved = (a: Tensor, b: Tensor, what: string): void => { const d = maxAbsDiff(a, b); assert.ok(d > 1e-4, `${what}: clipSkip changed nothing (${d})`); };

test('invert job: clipSkip reaches the inversion', async () => {
  const chain = await job('invert', { prompt: 'a cat', steps: 2, clipSkip: 1 });
  const lib = concatRows((await invert(ck(), await readImageRGB(REFERENCE_PNG), { prompt: 'a cat', steps: 2, clipSkip: 1 })).chain);
  same({ shape: lib.shape, data: chain.data }, lib, 'invert');
  moved(chain, await job('invert', { prompt: 'a cat', steps: 2 }), 'invert');
});

test('vary and inject jobs: clipSkip reaches the run', async () => {
  const lat = await job('vary', { prompt: 'a cat', steps: 1, width: 64, height: 64, clipSkip: 1 });
  const lib = await vary(ck(), { reference: await readImageRGB(REFERENCE_PNG), method: createMethod('indetail-ip', 1), prompt: 'a cat', inversionPrompt: 'a cat', steps: 1, width: 64, height: 64, noise: createNoise('torch', 5), clipSkip: 1 });
  same(lat, lib.latents, 'vary');
  const inj = await job('inject', { content: 'other', prompt: 'a cat', steps: 2, clipSkip: 1 });
  const libInj = await inject(ck(), { original: await readImageRGB(REFERENCE_PNG), content: await readImageRGB(OTHER_PNG), prompt: 'a cat', steps: 2, noise: createNoise('torch', 5), clipSkip: 1 });
  same(inj, libInj.latents, 'inject');
});

test('fuse job: clipSkip and the IP-Adapter fields reach the run; with pnoSteps the combination is refused', async () => {
  const ip = { ipAdapter: ['tiny-ip-adapter/ip-adapter_sd15.safetensors'], ipImage: ['other'], ipScale: [0.5] };
  const base = { aligner: 'aligner.safetensors', prompt: 'a photograph of a cat', steps: 1, width: 64, height: 64 };
  const lat = await job('fuse', { ...base, ...ip, clipSkip: 1 });
  const lib = await fuseGenerate(ck(), {
    aligner: path.join(root, 'aligner.safetensors'), reference: await readImageRGB(REFERENCE_PNG), prompt: base.prompt, steps: 1, width: 64, height: 64, noise: createNoise('torch', 5),
    ipAdapters: [{ adapter: path.join(root, 'tiny-ip-adapter', 'ip-adapter_sd15.safetensors'), image: await readImageRGB(OTHER_PNG), scale: 0.5 }], clipSkip: 1,
  });
  same(lat, lib.latents, 'fuse');
  moved(lat, await job('fuse', { ...base, ...ip }), 'fuse clipSkip');
  moved(lat, await job('fuse', { ...base, clipSkip: 1 }), 'fuse ipAdapter');
  await assert.rejects(job('fuse', { ...base, ...ip, pnoSteps: 1 }), /--ip-adapter with --pno-steps 1/);
});
