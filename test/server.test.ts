/**
 * `visprompt serve`: the A1111 contract (same pixels as the CLI), every job kind over REST, live
 * progress over SSE, cancel, delete, result files, persistence across a restart, and bad requests
 * (each a 4xx naming the field, the server still serving afterwards).
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { serve, DEFAULT_SERVE, type Running } from '../src/server/serve.js';
import { readPNGText } from '../src/io/image.js';
import { CLI, REFERENCE_PNG, ROOT, client, dataUrl, freePort, modelsFolder, spawnCli, tmpDir, waitJob } from './server-helpers.js';

let models: string, data: string, srv: Running, call: ReturnType<typeof client>;
before(async () => {
  models = modelsFolder();
  data = tmpDir('data');
  srv = await serve({ ...DEFAULT_SERVE, models, data, port: 0, rateLimit: 100_000, workers: 1 });
  call = client(srv.url);
});
after(async () => { await srv.close(); });

const small = { model: 'tiny-sd15', steps: 2, width: 32, height: 32, seed: 7 };

async function pixels(png: Buffer | string): Promise<Buffer> {
  return (await sharp(png).raw().toBuffer());
}

test('contract: /openapi.json, sd-models with family, A1111 txt2img equals `visprompt generate` pixel for pixel', async () => {
  const api = await call('GET', '/openapi.json');
  assert.equal(api.status, 200);
  assert.match(api.json.openapi, /^3\./);
  for (const k of ['generate', 'vary', 'invert', 'inject', 'edit', 'fuse']) {
    const body = api.json.paths[`/api/jobs/${k}`]?.post?.requestBody?.content?.['application/json']?.schema;
    assert.ok(body?.properties?.model, `${k} request schema in the OpenAPI document`);
  }
  assert.equal(api.json.paths['/api/jobs/vary'].post.requestBody.content['application/json'].schema.properties.lambdaP.default, 1);

  const list = await call('GET', '/sdapi/v1/sd-models');
  assert.deepEqual(list.json.map((m: { title: string }) => m.title), ['tiny-sd15']);
  const all = await call('GET', '/api/models');
  const fam = Object.fromEntries(all.json.models.map((m: { name: string; family: string }) => [m.name, m.family]));
  assert.deepEqual({ ...fam, 'tiny-lora/lora_kohya_sd15.safetensors': undefined }, {
    ...fam, 'tiny-sd15': 'sd1', 'tiny-controlnet-sd15': 'controlnet', 'tiny-clip': 'clip', 'tiny-taesd': 'taesd', 'aligner.safetensors': 'unknown', 'attributes/smile.safetensors': 'unknown',
    'tiny-lora/lora_kohya_sd15.safetensors': undefined,
  });
  assert.equal(all.json.models.find((m: { name: string }) => m.name === 'tiny-lora/lora_kohya_sd15.safetensors').kind, 'weights');

  const s = { prompt: 'a lighthouse at dusk', negative_prompt: 'blurry', steps: 3, cfg_scale: 6.5, width: 32, height: 24, seed: 4242, sampler_name: 'DDIM', batch_size: 1, n_iter: 1 };
  const r = await call('POST', '/sdapi/v1/txt2img', s);
  assert.equal(r.status, 200, r.text);
  const out = path.join(tmpDir('cli'), 'cli.png');
  const c = spawnSync(process.execPath, [CLI, 'generate', '--model', path.join(models, 'tiny-sd15'), '--prompt', s.prompt, '--negative-prompt', s.negative_prompt,
    '--steps', '3', '--guidance', '6.5', '--width', '32', '--height', '24', '--seed', '4242', '--scheduler', 'ddim', '--out', out, '--quiet'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);
  assert.ok((await pixels(Buffer.from(r.json.images[0], 'base64'))).equals(await pixels(out)), 'server image equals the CLI image');
  assert.equal(JSON.parse(r.json.info).seed, 4242);

  // n_iter: iteration i is seeded with seed + i (batch_size 1), as A1111 does: its image is `generate --seed 4243`.
  const two = await call('POST', '/sdapi/v1/txt2img', { ...s, steps: 2, n_iter: 2 });
  assert.equal(two.status, 200, two.text);
  assert.equal(two.json.images.length, 2);
  assert.deepEqual(JSON.parse(two.json.info).all_seeds, [4242, 4243]);
  const out2 = path.join(tmpDir('cli'), 'cli-4243.png');
  const c2 = spawnSync(process.execPath, [CLI, 'generate', '--model', path.join(models, 'tiny-sd15'), '--prompt', s.prompt, '--negative-prompt', s.negative_prompt,
    '--steps', '2', '--guidance', '6.5', '--width', '32', '--height', '24', '--seed', '4243', '--scheduler', 'ddim', '--out', out2, '--quiet'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(c2.status, 0, c2.stderr);
  assert.ok((await pixels(Buffer.from(two.json.images[1], 'base64'))).equals(await pixels(out2)), 'the second iteration equals generate --seed seed+1');

  const prog = await call('GET', '/sdapi/v1/progress');
  assert.equal(prog.status, 200);
  assert.equal(typeof prog.json.progress, 'number');
});

test('every job kind over REST: generate (+ControlNet, previews), vary with every method, invert, inject, edit, fuse; files and records persisted', async () => {
  const up = await call('POST', '/api/uploads', fs.readFileSync(REFERENCE_PNG), { 'content-type': 'image/png' });
  assert.equal(up.status, 201, up.text);
  const image = up.json.id as string;
  assert.match(image, /^[0-9a-f]{64}$/);
  const jobs: [string, Record<string, unknown>, RegExp][] = [
    ['generate', { ...small, prompt: 'a cat', numImages: 2, saveLatents: true, previewEvery: 1 }, /^image-0\.png,image-1\.png,latents\.safetensors$/],
    ['generate', { ...small, prompt: 'a cat', controlnet: ['tiny-controlnet-sd15'], controlImage: [dataUrl(REFERENCE_PNG)], controlScale: [0.5] }, /^image-0\.png$/],
    ['vary', { ...small, image, prompt: 'a cat' }, /^image-0\.png$/],
    ['generate', { ...small, prompt: 'a cat', lora: ['tiny-lora/lora_kohya_sd15.safetensors:0.8'], vaeTiny: 'tiny-taesd', previewEvery: 1 }, /^image-0\.png$/],
    ['vary', { ...small, image, prompt: 'a cat', ipAdapter: ['tiny-ip-adapter/ip-adapter_sd15.safetensors'], ipImage: [image], ipScale: [0.5], previewEvery: 1 }, /^image-0\.png$/],
    ['vary', { ...small, image, prompt: 'a cat', method: 'kv-concat' }, /^image-0\.png$/],
    ['vary', { ...small, image, prompt: 'a cat', method: 'kv-replace', startStep: 0 }, /^image-0\.png$/],
    ['vary', { ...small, image, prompt: 'a cat', method: 'style-aligned', guidanceMode: 'conflicting' }, /^image-0\.png$/],
    ['invert', { model: 'tiny-sd15', image, steps: 2, width: 32, height: 32 }, /^chain\.safetensors$/],
    ['inject', { model: 'tiny-sd15', image, content: image, steps: 3, seed: 1, gammaRamp: [0.2, 0.8] }, /^image-0\.png$/],
    ['edit', { model: 'tiny-sd15', image, attribute: 'attributes/smile.safetensors', steps: 3, seed: 1, tEdit: 300, tBoost: 0 }, /^image-0\.png$/],
    ['fuse', { model: 'tiny-sd15', aligner: 'aligner.safetensors', image, prompt: 'a cat', steps: 2, seed: 3 }, /^image-0\.png$/],
  ];
  const ids: string[] = [];
  for (const [kind, body] of jobs) {
    const r = await call('POST', `/api/jobs/${kind}`, body);
    assert.equal(r.status, 202, `${kind}: ${r.text}`);
    assert.equal(r.json.status, 'queued');
    ids.push(r.json.id);
  }
  for (const [i, [kind, , files]] of jobs.entries()) {
    const rec = await waitJob(call, ids[i]!);
    assert.equal(rec.status, 'succeeded', `${kind}: ${rec.error}`);
    assert.match(rec.files.join(','), files, kind);
    assert.ok(rec.timings.runMs > 0 && rec.versions.visprompt && rec.versions['onnxruntime-node'], 'timings and versions recorded');
    const onDisk = JSON.parse(fs.readFileSync(path.join(data, 'jobs', rec.id, 'job.json'), 'utf8'));
    assert.equal(onDisk.status, 'succeeded');
    if (rec.files[0].endsWith('.png')) {
      const f = await fetch(`${srv.url}/api/jobs/${rec.id}/files/${rec.files[0]}`);
      assert.equal(f.headers.get('content-type'), 'image/png');
      const params = JSON.parse(readPNGText(path.join(data, 'jobs', rec.id, rec.files[0])).parameters!);
      assert.equal(params.model, 'tiny-sd15');
    }
  }
  // The defaults are the CLI's, filled in and recorded.
  const v = (await call('GET', `/api/jobs/${ids[2]}`)).json;
  assert.deepEqual(v.params.lora, []);
  assert.equal(v.params.method, 'indetail-ip');
  assert.equal(v.params.guidance, 7.5);
  assert.equal(v.params.noise, 'torch');
  assert.equal(v.seed, '7');
  // Re-run exactly: same seed, same pixels.
  const again = await call('POST', `/api/jobs/${ids[2]}/rerun`);
  const rec2 = await waitJob(call, again.json.id);
  assert.ok((await pixels(path.join(data, 'jobs', ids[2]!, 'image-0.png'))).equals(await pixels(path.join(data, 'jobs', rec2.id, 'image-0.png'))));
  // Model kept loaded between jobs.
  assert.ok((await call('GET', '/api/models')).json.loaded.some((k: string) => k.includes('tiny-sd15')));
});

test('live progress over Server-Sent Events (step, total, ETA, preview), then the final status', async () => {
  const r = await call('POST', '/api/jobs/generate', { ...small, prompt: 'a cat', steps: 6, previewEvery: 2 });
  const res = await fetch(`${srv.url}/api/jobs/${r.json.id}/events`);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const text = await res.text(); // the stream ends when the job is final
  const events = [...text.matchAll(/event: (\w+)\ndata: (.*)\n\n/g)].map((m) => ({ type: m[1], data: JSON.parse(m[2]!) }));
  const denoise = events.filter((e) => e.type === 'progress' && e.data.stage === 'denoise');
  assert.ok(denoise.length >= 2, text.slice(0, 500));
  assert.equal(denoise[0]!.data.total, 6);
  assert.ok(denoise.some((e) => typeof e.data.etaSeconds === 'number'));
  assert.ok(events.some((e) => e.type === 'progress' && /^data:image\/png;base64,/.test(e.data.preview ?? '')), 'a preview image arrives');
  assert.equal(events.at(-1)!.data.status, 'succeeded');
});

test('cancel a running job, cancel a queued job, delete a job', async () => {
  const long = await call('POST', '/api/jobs/generate', { ...small, prompt: 'a cat', steps: 400 });
  const queued = await call('POST', '/api/jobs/generate', { ...small, prompt: 'a dog', steps: 400 });
  for (let i = 0; i < 200 && (await call('GET', `/api/jobs/${long.json.id}`)).json.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 50));
  const c1 = await call('POST', `/api/jobs/${queued.json.id}/cancel`);
  assert.equal(c1.json.status, 'canceled');
  const c2 = await call('POST', `/api/jobs/${long.json.id}/cancel`);
  assert.equal(c2.status, 200, c2.text);
  assert.equal(c2.json.status, 'canceled');
  const del = await call('DELETE', `/api/jobs/${long.json.id}`);
  assert.equal(del.status, 204);
  assert.equal((await call('GET', `/api/jobs/${long.json.id}`)).status, 404);
  assert.ok(!fs.existsSync(path.join(data, 'jobs', long.json.id)));
});

test('bad requests: each a 4xx with a message naming the field; the server keeps serving', async () => {
  const expect = async (r: Promise<{ status: number; json: any; text: string }>, status: number, msg: RegExp, what: string): Promise<void> => {
    const x = await r;
    assert.equal(x.status, status, `${what}: ${x.text}`);
    assert.match(x.json?.error ?? '', msg, what);
  };
  await expect(call('POST', '/api/jobs/generate', '{not json'), 400, /body: not valid JSON/, 'malformed JSON');
  await expect(call('POST', '/sdapi/v1/txt2img', { prompt: 'x', steps: 'many' }), 400, /^steps: must be integer/, 'wrong type');
  await expect(call('POST', '/api/jobs/generate', { ...small, prompt: 'x', steps: '4' }), 400, /^steps: must be integer/, 'number as a string');
  await expect(call('POST', '/api/jobs/vary', { ...small, prompt: 'x' }), 400, /^image: is required/, 'missing field');
  await expect(call('POST', '/api/jobs/vary', { ...small, image: 'x', method: 'magic' }), 400, /^method: must be one of indetail-ip/, 'bad choice');
  await expect(call('POST', '/api/jobs/generate', { ...small, prompt: 'x', stepz: 3 }), 400, /^stepz: is not a parameter/, 'unknown field');
  await expect(call('POST', '/api/jobs/generate', { ...small, prompt: 'x', model: '../tiny-sd15' }), 400, /^model: .*no absolute paths or "\.\."/, '../ in a model name');
  await expect(call('POST', '/api/jobs/edit', { model: 'tiny-sd15', image: 'a'.repeat(64), attribute: '../../etc/passwd' }), 400, /^attribute: /, '../ in a file name');
  await expect(call('POST', '/api/jobs/generate', { ...small, prompt: 'x', lora: ['nope.safetensors:0.5'] }), 404, /^lora\[0\]: no model or file named "nope\.safetensors"/, 'unknown LoRA');
  await expect(call('POST', '/api/jobs/generate', { ...small, prompt: 'x', lora: ['tiny-lora/lora_kohya_sd15.safetensors:much'] }), 400, /^lora\[0\] scale must be a number/, 'bad LoRA scale');
  await expect(call('POST', '/api/jobs/generate', { ...small, prompt: 'x', model: 'nope' }), 404, /^model: unknown model "nope" \(available: tiny-sd15\)/, 'unknown model');
  await expect(call('POST', '/api/jobs/vary', { ...small, prompt: 'x', image: 'f'.repeat(64) }), 404, /^image: no upload/, 'unknown upload');
  await expect(call('POST', '/api/uploads', Buffer.from('this is not a png'), { 'content-type': 'image/png' }), 400, /^image: not an image/, 'non-image upload');
  await expect(call('POST', '/api/jobs/vary', { ...small, prompt: 'x', image: `data:image/png;base64,${Buffer.from('GIF89a nonsense').toString('base64')}` }), 400, /^image: not an image/, 'non-image data URL');
  await expect(call('POST', '/api/uploads', Buffer.alloc(50 * 2 ** 20, 1), { 'content-type': 'image/png' }), 413, /body: request larger than/, '50 MB upload');
  await expect(call('POST', '/api/uploads', 'x'.repeat(100), { 'content-type': 'text/plain' }), 400, /^body: send the image bytes/, 'text upload');
  await expect(call('POST', '/api/uploads', '<x/>', { 'content-type': 'application/xml' }), 415, /^content-type: application\/xml is not accepted/, 'wrong content type');
  await expect(call('GET', `/api/jobs/${'0'.repeat(9)}-00000000/files/..%2F..%2Fjob.json`), 404, /^id: no job/, 'traversal in a file name');
  await expect(call('GET', '/api/jobs/..%2F..%2Fetc'), 400, /^id: .* is not a job id/, 'traversal in a job id');
  await expect(call('POST', '/api/jobs/generate', { ...small, prompt: 'x', controlnet: ['tiny-controlnet-sd15'] }), 400, /^controlImage: 0 images for 1 controlnet/, 'control pairing');
  await expect(call('POST', '/api/jobs/fuse', { ...small, image: 'a'.repeat(64), aligner: 'aligner.safetensors', prompt: 'x', ipAdapter: ['tiny-ip-adapter/ip-adapter_sd15.safetensors'], ipImage: ['x'], pnoSteps: 1 }), 400, /^ipAdapter: not with pnoSteps/, 'IP-Adapter with PNO');
  await expect(call('POST', '/api/jobs/fuse', { ...small, image: 'a'.repeat(64), aligner: 'aligner.safetensors', prompt: 'x', controlnet: ['tiny-controlnet-sd15'], controlImage: ['x'], pnoSteps: 1 }), 400, /^controlnet: not with pnoSteps/, 'ControlNet with PNO');
  await expect(call('POST', '/sdapi/v1/txt2img', { prompt: 'x', sampler_name: 'Heun++', steps: 2, width: 32, height: 32 }), 400, /^sampler_name: "Heun\+\+" is not available/, 'unknown sampler');
  await expect(call('POST', '/sdapi/v1/txt2img', { prompt: 'x', steps: 2, width: 30, height: 32 }), 400, /width 30 is not divisible by 4/, 'size not divisible (a failed job, reported as 400)');
  const ok = await call('GET', '/sdapi/v1/sd-models');
  assert.equal(ok.status, 200, 'still serving');
});

test('token, rate limit, image dimension limit, per-job timeout, CORS off by default, loopback rule', async () => {
  const d = tmpDir('data2');
  const s2 = await serve({ ...DEFAULT_SERVE, models, data: d, port: 0, token: 's3cret', rateLimit: 12, maxImageSide: 48, jobTimeoutMs: 300 });
  try {
    const anon = client(s2.url), auth = client(s2.url, 's3cret');
    const r = await anon('GET', '/api/models');
    assert.equal(r.status, 401);
    assert.match(r.json.error, /^authorization: missing bearer token/);
    assert.equal((await client(s2.url, 'wrong')('GET', '/api/models')).status, 401);
    assert.equal((await anon('GET', '/openapi.json')).status, 200, 'the API description is public');
    assert.equal((await auth('GET', `/api/models?x=1`)).status, 200);
    assert.equal((await anon('GET', '/api/models?token=s3cret')).status, 200, 'token as a query parameter (EventSource, <img>)');
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'no CORS headers');
    const big = await auth('POST', '/api/uploads', fs.readFileSync(REFERENCE_PNG), { 'content-type': 'image/png' });
    assert.equal(big.status, 400);
    assert.match(big.json.error, /^image: image of 64x64 is over the 48-pixel side limit/);
    const slow = await auth('POST', '/api/jobs/generate', { ...small, prompt: 'x', steps: 300 });
    const rec = await waitJob(auth, slow.json.id);
    assert.equal(rec.status, 'failed');
    assert.match(rec.error, /timed out after 0.3 s/);
    let limited = 0;
    for (let i = 0; i < 14; i++) if ((await auth('GET', '/api/health')).status === 429) limited++;
    assert.ok(limited > 0, 'rate limit answers 429');
    const after = await auth('GET', '/api/health');
    assert.match(after.json.error, /^rate limit: more than 12 requests a minute/);
  } finally { await s2.close(); }
  await assert.rejects(serve({ ...DEFAULT_SERVE, models, data: d, host: '0.0.0.0', port: 0 }), /--host 0\.0\.0\.0 is reachable from other machines: give --token/);
});

test('restart: a job running when the server is killed is re-queued and finishes; finished jobs survive', async () => {
  const d = tmpDir('data3');
  const port = await freePort();
  const args = ['serve', '--host', '127.0.0.1', '--port', String(port), '--models', models, '--data', d];
  let s = await spawnCli(args, /visprompt serving/);
  const c = client(`http://127.0.0.1:${port}`);
  const done = await c('POST', '/api/jobs/generate', { ...small, prompt: 'first' });
  await waitJob(c, done.json.id);
  const long = await c('POST', '/api/jobs/generate', { ...small, prompt: 'second', steps: 60 });
  for (let i = 0; i < 400 && (await c('GET', `/api/jobs/${long.json.id}`)).json.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 25));
  s.child.kill('SIGKILL');
  await new Promise((r) => s.child.once('exit', r));
  s = await spawnCli(args, /visprompt serving/);
  try {
    assert.match(s.log(), /re-queued 1 unfinished job/);
    const rec = await waitJob(c, long.json.id);
    assert.equal(rec.status, 'succeeded');
    assert.equal(rec.attempts, 2);
    const first = (await c('GET', `/api/jobs/${done.json.id}`)).json;
    assert.equal(first.status, 'succeeded');
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/jobs/${first.id}/files/image-0.png`)).status, 200);
  } finally { s.child.kill('SIGTERM'); }
});
