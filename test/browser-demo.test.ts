/**
 * visprompt in the browser: the built demo (dist/web-demo, `npm run build`) served locally and driven
 * by playwright-core in Debian's headless Chromium (never downloaded). The tiny model's folder is
 * picked through the page's <input webkitdirectory>, text-to-image runs with a fixed seed, and the
 * latents must match the Node library's CPU result: on WebGPU (Chromium's SwiftShader adapter) within
 * the WebGPU bound of test/webgpu.test.ts (2e-4), and with WebGPU unavailable on the WebAssembly path
 * (there also vary with InDetail-IP, and a single-file checkpoint with the bundled CLIP vocabulary).
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
import { openComponentWeights, SafetensorsSource, WeightsView } from '../src/io/weights.js';
import { readImageRGB } from '../src/io/image.js';
import { toOriginalLayout } from '../src/io/original-keymap.js';
import { createMethod } from '../src/methods/index.js';
import { vary } from '../src/pipelines/vary.js';
import { host, setHost } from '../src/runtime/host.js';
import { createHash as webCreateHash } from '../src/runtime/web/hash.js';
import * as webFs from '../src/runtime/web/fs.js';
import * as webPath from '../src/runtime/web/path.js';
import nodeCrypto from 'node:crypto';
import { createNoise } from '../src/noise/gaussian.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';
import { REFERENCE_PNG, ROOT } from './server-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const DEMO = path.join(ROOT, 'dist', 'web-demo');
const M = 'tiny-sd15';
/** The WebGPU bound (twice the CPU suites' latent tolerance, as test/webgpu.test.ts and contract k.mjs). */
const LATENT_TOL = 2e-4;
/** SwiftShader compiles every WGSL kernel on the CPU: few steps, small size. */
const VARY = { inversionPrompt: 'a photograph', lambdaP: 1 };
const RUN = { prompt: 'a photograph of a cat', negativePrompt: 'blurry', steps: 2, guidance: 7.5, width: 32, height: 32, seed: 7 };
/** SwiftShader by default; scripts/gpu-check.sh --browser-gpu gives the flags for a machine's GPU instead. */
const WEBGPU_ADAPTER_ARGS = process.env.VISPROMPT_BROWSER_WEBGPU_ARGS?.split(' ').filter(Boolean) ?? ['--use-webgpu-adapter=swiftshader'];
const BASE_ARGS = ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium): the browser demo is untested`;

const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm',
  '.json': 'application/json', '.txt': 'text/plain', '.png': 'image/png',
};

let server: http.Server, url: string, cpu: { t2i: Tensor; vary: Tensor }, singleFile: string;

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
  // The same runs with the Node library on the CPU.
  const ck = openCheckpoint(modelDir(M));
  const t2i = await textToImage(ck, { ...RUN, noise: createNoise('torch', RUN.seed), latentsOnly: true });
  const varied = await vary(ck, {
    ...RUN, ...VARY, reference: await readImageRGB(REFERENCE_PNG), noise: createNoise('torch', RUN.seed),
    method: createMethod('indetail-ip', RUN.steps, { lambdaP: VARY.lambdaP }),
  });
  cpu = { t2i: t2i.latents, vary: varied.latents };
  // The tiny model in the original single-file layout (as test/single-file.test.ts).
  const dir = modelDir(M);
  const read = (c: string): Record<string, Tensor> => { const src = openComponentWeights(path.join(dir, c)); return Object.fromEntries([...src.keys()].map((k) => [k, src.read(k)])); };
  singleFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-demo-')), 'tiny-sd15.safetensors');
  writeSafetensors(singleFile, toOriginalLayout({ unet: read('unet'), vae: read('vae'), text_encoder: read('text_encoder') }));
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

test('browser build: its sha1 / sha256 (node:crypto stand-in) equal node:crypto\'s', () => {
  for (const len of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
    const data = Uint8Array.from({ length: len }, (_, i) => (i * 131 + len) & 255);
    for (const alg of ['sha1', 'sha256']) {
      assert.equal(webCreateHash(alg).update(data.subarray(0, len >> 1)).update(data.subarray(len >> 1)).digest('hex'), nodeCrypto.createHash(alg).update(data).digest('hex'), `${alg} of ${len} bytes`);
    }
  }
  assert.equal(webCreateHash('sha1').update('{"a":"é"}').digest('hex'), nodeCrypto.createHash('sha1').update('{"a":"é"}').digest('hex'));
});

test('library browser build (dist/browser/visprompt.js): one ES module, no Node built-ins, onnxruntime-web left to the app', () => {
  const lib = path.join(ROOT, 'dist', 'browser', 'visprompt.js');
  assert.ok(fs.existsSync(lib), `the browser build is not built in ${lib}: run npm run build`);
  const code = fs.readFileSync(lib, 'utf8');
  const imports = [...code.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
  assert.deepEqual(imports, ['onnxruntime-web/webgpu']);
  const statements = code.split('\n').filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l)).join('\n'); // comments may name anything
  assert.doesNotMatch(statements, /from "node:|\brequire\("[^"]*"\)|from "onnxruntime-node"|from "sharp"/);
  for (const name of ['mountModel', 'openCheckpoint', 'textToImage', 'vary', 'pickDevice', 'useDevice']) assert.match(code, new RegExp(`export \\{[^}]*\\b${name}\\b`));
});

// The browser's file system over picked files, in Node with an in-memory slice reader (FileReaderSync in a worker).
test('browser build: read-only file system over File objects (positioned reads, folders, errors) and POSIX paths', () => {
  const bytes = new Map<object, Uint8Array>();
  const file = (text: string | Uint8Array): webFs.BlobLike => {
    const data = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    const b = { size: data.length, lastModified: 5, slice: (): Blob => { throw new Error('not used'); } };
    bytes.set(b, data);
    return b;
  };
  const reads: [number, number][] = [];
  webFs.setSliceReader((blob, start, end) => { reads.push([start, end]); return bytes.get(blob)!.subarray(start, end); });
  try {
    const big = Uint8Array.from({ length: 1000 }, (_, i) => i & 255);
    webFs.mount('/model', [{ path: 'tiny/model_index.json', blob: file('{"a": 1}') }, { path: 'tiny/unet/w.safetensors', blob: file(big) }]);
    assert.equal(webFs.existsSync('/model/tiny/unet'), true);
    assert.equal(webFs.statSync('/model/tiny').isDirectory(), true);
    assert.equal(webFs.statSync('/model/tiny/unet/w.safetensors').size, 1000);
    assert.deepEqual(webFs.readdirSync('/model/tiny'), ['model_index.json', 'unet']);
    assert.equal(webFs.readFileSync('/model/tiny/./unet/../model_index.json', 'utf8'), '{"a": 1}');
    const fd = webFs.openSync('/model/tiny/unet/w.safetensors');
    const buf = new Uint8Array(8);
    reads.length = 0;
    assert.equal(webFs.readSync(fd, buf, 2, 4, 300), 4);
    assert.deepEqual([...buf], [0, 0, 300 & 255, 301 & 255, 302 & 255, 303 & 255, 0, 0]);
    assert.deepEqual(reads, [[300, 304]], 'only the asked bytes are read');
    assert.equal(webFs.readSync(fd, buf, 0, 8, 996), 4, 'short read at the end');
    assert.equal(webFs.readSync(fd, buf, 0, 8, 1000), 0);
    webFs.closeSync(fd);
    assert.throws(() => webFs.readSync(fd, buf, 0, 1, 0), { code: 'EBADF' });
    assert.throws(() => webFs.openSync('/model/tiny/vae/x'), { code: 'ENOENT' });
    assert.throws(() => webFs.openSync('/model/tiny/unet'), { code: 'EISDIR' });
    assert.throws(() => webFs.mkdirSync('/tmp/x'), { code: 'EROFS' });
    webFs.unmount('/model');
    assert.equal(webFs.existsSync('/model/tiny/model_index.json'), false);
  } finally { webFs.setSliceReader(undefined); }
  for (const args of [['/a/b', '../c'], ['a', './b/'], ['/a', '', 'b/..'], ['/m/', 'unet', 'config.json']]) assert.equal(webPath.join(...args), path.posix.join(...args), args.join(' '));
  for (const p of ['/a/b/c.json', '/a', 'a', '/a/b/', '/']) {
    assert.equal(webPath.dirname(p), path.posix.dirname(p), p);
    assert.equal(webPath.basename(p), path.posix.basename(p), p);
    assert.equal(webPath.extname(p), path.posix.extname(p), p);
  }
  assert.equal(webPath.resolve('/m/unet', 'w.bin'), '/m/unet/w.bin');
  assert.equal(webPath.relative('/m/a/b', '/m/c'), path.posix.relative('/m/a/b', '/m/c'));
});

interface PageResult { device: string; kind: string; shape: number[]; latents: number[]; seconds: number }

async function openDemo(browser: Browser, query = ''): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`${url}${query}`);
  return { page, errors };
}

/** Pick the model as a user would: a folder (webkitdirectory keeps the relative paths) or one file. */
async function pickModel(page: Page, errors: string[], input: '#folder' | '#single', what: string): Promise<void> {
  await page.setInputFiles(input, what);
  await page.waitForFunction(`document.querySelector('#model-status').dataset.status !== 'loading'`, undefined, { timeout: 60_000 });
  assert.equal(await page.getAttribute('#model-status', 'data-status'), 'loaded', `model did not open: ${await page.textContent('#model-status')} ${errors.join('; ')}`);
  assert.match(await page.textContent('#model-status') ?? '', /text_encoder, unet, vae/);
}

async function runJob(page: Page, errors: string[], kind: 'generate' | 'vary', device: 'auto' | 'wasm'): Promise<PageResult> {
  await page.click(`.tabs button[data-kind=${kind}]`);
  await page.fill('#form [name=prompt]', RUN.prompt);
  await page.fill('#form [name=negativePrompt]', RUN.negativePrompt);
  for (const k of ['steps', 'guidance', 'width', 'height', 'seed'] as const) await page.fill(`#form [name=${k}]`, String(RUN[k]));
  await page.selectOption('#form [name=device]', device);
  if (kind === 'vary') {
    await page.setInputFiles('#reference', REFERENCE_PNG);
    await page.fill('#form [name=inversionPrompt]', VARY.inversionPrompt);
    await page.fill('#form [name=lambdaP]', String(VARY.lambdaP));
    await page.waitForTimeout(500); // the reference is decoded asynchronously
  }
  await page.evaluate(`document.querySelector('#result').dataset.status = 'none'; document.querySelector('#progress').removeAttribute('data-stage')`);
  await page.click('#run');
  // Progress events arrive from the worker while it runs.
  await page.waitForFunction(`document.querySelector('#progress').dataset.stage !== undefined`, undefined, { timeout: 120_000 });
  await page.waitForFunction(`['done', 'error'].includes(document.querySelector('#result').dataset.status)`, undefined, { timeout: 540_000, polling: 1000 });
  assert.equal(await page.getAttribute('#result', 'data-status'), 'done', `run failed: ${await page.textContent('#result-text')} ${errors.join('; ')}`);
  const result = await page.evaluate('window.__visprompt.last') as PageResult;
  assert.equal(result.kind, kind);
  // The result can be downloaded as a PNG.
  await page.waitForFunction(`document.querySelector('#images a')?.href.startsWith('blob:')`);
  const download = await Promise.all([page.waitForEvent('download'), page.click('#images a')]).then(([d]) => d);
  assert.equal(download.suggestedFilename(), `visprompt-${kind}-0.png`);
  return result;
}

function compare(r: PageResult, cpu: Tensor, what: string): number {
  assert.deepEqual(r.shape, [...cpu.shape], `${what}: latent shape`);
  const err = maxAbsDiff({ shape: r.shape, data: Float32Array.from(r.latents) }, cpu);
  console.log(`browser demo ${what}: ${M} ${RUN.steps} steps ${RUN.width}x${RUN.height} g${RUN.guidance}: final latents max abs err vs Node CPU ${err.toExponential(2)} (magnitude ${Math.max(...cpu.data.map(Math.abs)).toFixed(2)}), ${r.seconds.toFixed(1)} s in the page`);
  assert.ok(err <= LATENT_TOL, `${what}: max abs err ${err} > ${LATENT_TOL}`);
  return err;
}

test('browser demo: WebGPU (SwiftShader) text-to-image matches the Node CPU latents', { skip, timeout: 600_000 }, async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, '--enable-unsafe-webgpu', ...WEBGPU_ADAPTER_ARGS] });
  try {
    const { page, errors } = await openDemo(browser);
    await pickModel(page, errors, '#folder', modelDir(M));
    const result = await runJob(page, errors, 'generate', 'auto');
    assert.equal(result.device, 'webgpu', 'auto picks WebGPU when the browser has an adapter');
    compare(result, cpu.t2i, 'webgpu text-to-image');
  } finally { await browser.close(); }
});

test('browser demo: without WebGPU the page falls back to WebAssembly and matches too (text-to-image, vary, single file)', { skip, timeout: 600_000 }, async () => {
  // No --enable-unsafe-webgpu: headless Chromium offers no adapter, so 'auto' must take the WASM path.
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, '--disable-gpu', '--disable-features=WebGPU'] });
  try {
    const { page, errors } = await openDemo(browser);
    await pickModel(page, errors, '#folder', modelDir(M));
    const t2i = await runJob(page, errors, 'generate', 'auto');
    assert.equal(t2i.device, 'cpu', 'auto falls back to WebAssembly');
    compare(t2i, cpu.t2i, 'wasm text-to-image');
    compare(await runJob(page, errors, 'vary', 'auto'), cpu.vary, 'wasm vary (InDetail-IP)');
    // A single-file checkpoint: the bundled CLIP vocabulary stands in for its missing tokenizer files.
    const single = await openDemo(browser, '?unetHeads=8&textHeads=4');
    await pickModel(single.page, single.errors, '#single', singleFile);
    compare(await runJob(single.page, single.errors, 'generate', 'wasm'), cpu.t2i, 'wasm single-file text-to-image');
  } finally { await browser.close(); }
});
