/**
 * visprompt in the browser: the built demo (dist/web-demo, `npm run build`) served locally and driven
 * by playwright-core in Debian's headless Chromium (never downloaded). The tiny model's folder is
 * picked through the page's <input webkitdirectory>, text-to-image runs with a fixed seed, and the
 * latents must match the Node library's CPU result: on WebGPU (Chromium's SwiftShader adapter) within
 * the WebGPU bound of test/webgpu.test.ts (2e-4), and with WebGPU unavailable on the WebAssembly path.
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { Graph } from '../src/graph/ir.js';
import { toOnnx } from '../src/graph/onnx.js';
import { identity } from '../src/graph/ops.js';
import { runOnce } from '../src/graph/session.js';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { SafetensorsSource, WeightsView } from '../src/io/weights.js';
import { host, setHost } from '../src/runtime/host.js';
import { createNoise } from '../src/noise/gaussian.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';
import { ROOT } from './server-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const DEMO = path.join(ROOT, 'dist', 'web-demo');
const M = 'tiny-sd15';
/** The WebGPU bound (twice the CPU suites' latent tolerance, as test/webgpu.test.ts and contract k.mjs). */
const LATENT_TOL = 2e-4;
/** SwiftShader compiles every WGSL kernel on the CPU: few steps, small size. */
const RUN = { prompt: 'a photograph of a cat', negativePrompt: 'blurry', steps: 2, guidance: 7.5, width: 32, height: 32, seed: 7 };
const BASE_ARGS = ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium): the browser demo is untested`;

const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm',
  '.json': 'application/json', '.txt': 'text/plain', '.png': 'image/png',
};

let server: http.Server, url: string, cpu: Tensor;

before(async () => {
  if (skip) return;
  assert.ok(fs.existsSync(path.join(DEMO, 'index.html')), `the browser demo is not built in ${DEMO}: run npm run build`);
  // A plain static server: the demo needs nothing else (no API; the model files never leave the browser).
  server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
    const file = path.join(DEMO, rel);
    if (!file.startsWith(DEMO) || !fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  // The same run with the Node library on the CPU.
  const r = await textToImage(openCheckpoint(modelDir(M)), { ...RUN, noise: createNoise('torch', RUN.seed), latentsOnly: true });
  cpu = r.latents;
});
after(async () => { await new Promise((r) => server?.close(r)); });

// The runtime seam, in Node: with a host whose engine opens no files (the browser's), weights that lie
// in the checkpoint's files are read and handed to ONNX Runtime in memory instead, with the same result.
test('host without engine file access: file-backed weights go in memory, same values', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-host-')), 'w.safetensors');
  const w = Float32Array.from({ length: 96 }, (_, i) => Math.fround(Math.sin(i) * 3));
  writeSafetensors(file, { w: { shape: [8, 12], data: w } });
  const build = (): Graph => {
    const g = new Graph();
    const vb = new WeightsView(new SafetensorsSource(file, [SafetensorsFile.open(file)]));
    g.output('out', identity(g.weight('w', vb.forGraph('w'))));
    return g;
  };
  assert.equal(host().engineReadsFiles, true);
  const node = toOnnx(build());
  assert.equal(node.fileFolder, path.dirname(file), 'Node: ONNX Runtime reads the F32 weight from its file');
  assert.equal(node.externalData.length, 0);
  assert.deepEqual([...(await runOnce(build(), {})).out!.data], [...w]);
  setHost({ engineReadsFiles: false });
  try {
    const web = toOnnx(build());
    assert.equal(web.fileFolder, undefined, 'browser: no folder for the engine');
    assert.equal(web.externalData.length, 1);
    assert.equal(web.externalData[0]!.data.byteLength, w.byteLength);
    assert.deepEqual([...(await runOnce(build(), {})).out!.data], [...w]);
  } finally { setHost({ engineReadsFiles: true }); }
});

interface PageResult { device: string; kind: string; shape: number[]; latents: number[]; seconds: number }

async function generateIn(browser: Browser, device: 'auto' | 'wasm'): Promise<{ result: PageResult; page: Page }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  // Pick the model folder as a user would (webkitdirectory keeps the relative paths).
  await page.setInputFiles('#folder', modelDir(M));
  await page.waitForFunction(`document.querySelector('#model-status').dataset.status !== 'loading'`, undefined, { timeout: 60_000 });
  assert.equal(await page.getAttribute('#model-status', 'data-status'), 'loaded', `model did not open: ${await page.textContent('#model-status')} ${errors.join('; ')}`);
  assert.match(await page.textContent('#model-status') ?? '', /text_encoder, unet, vae/);
  await page.fill('#form [name=prompt]', RUN.prompt);
  await page.fill('#form [name=negativePrompt]', RUN.negativePrompt);
  for (const k of ['steps', 'guidance', 'width', 'height', 'seed'] as const) await page.fill(`#form [name=${k}]`, String(RUN[k]));
  await page.selectOption('#form [name=device]', device);
  await page.click('#run');
  // Progress events arrive from the worker while it runs.
  await page.waitForFunction(`document.querySelector('#progress').dataset.stage !== undefined`, undefined, { timeout: 120_000 });
  await page.waitForFunction(`['done', 'error'].includes(document.querySelector('#result').dataset.status)`, undefined, { timeout: 540_000, polling: 1000 });
  assert.equal(await page.getAttribute('#result', 'data-status'), 'done', `run failed: ${await page.textContent('#result-text')} ${errors.join('; ')}`);
  const result = await page.evaluate('window.__visprompt.last') as PageResult;
  // The result can be downloaded as a PNG.
  await page.waitForFunction(`document.querySelector('#images a')?.href.startsWith('blob:')`);
  const download = await Promise.all([page.waitForEvent('download'), page.click('#images a')]).then(([d]) => d);
  assert.match(download.suggestedFilename(), /^visprompt-generate-0\.png$/);
  return { result, page };
}

function compare(r: PageResult, what: string): number {
  assert.deepEqual(r.shape, [...cpu.shape], `${what}: latent shape`);
  const err = maxAbsDiff({ shape: r.shape, data: Float32Array.from(r.latents) }, cpu);
  console.log(`browser demo ${what}: ${M} ${RUN.steps} steps ${RUN.width}x${RUN.height} g${RUN.guidance}: final latents max abs err vs Node CPU ${err.toExponential(2)} (magnitude ${Math.max(...cpu.data.map(Math.abs)).toFixed(2)}), ${r.seconds.toFixed(1)} s in the page`);
  assert.ok(err <= LATENT_TOL, `${what}: max abs err ${err} > ${LATENT_TOL}`);
  return err;
}

test('browser demo: WebGPU (SwiftShader) text-to-image matches the Node CPU latents', { skip, timeout: 600_000 }, async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'] });
  try {
    const { result } = await generateIn(browser, 'auto');
    assert.equal(result.device, 'webgpu', 'auto picks WebGPU when the browser has an adapter');
    compare(result, 'webgpu');
  } finally { await browser.close(); }
});

test('browser demo: without WebGPU the page falls back to WebAssembly and matches too', { skip, timeout: 600_000 }, async () => {
  // No --enable-unsafe-webgpu: headless Chromium on Linux offers no adapter, so 'auto' must take the WASM path.
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, '--disable-gpu', '--disable-features=WebGPU'] });
  try {
    const { result } = await generateIn(browser, 'auto');
    assert.equal(result.device, 'cpu', 'auto falls back to WebAssembly');
    compare(result, 'wasm');
  } finally { await browser.close(); }
});
