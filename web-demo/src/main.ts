/**
 * The demo page: pick a model (folder or single file), run text-to-image or vary in the worker, show
 * progress and the result with a PNG download. The last result is also kept on `window.__visprompt`
 * (its latents) so a test can compare it with the Node library's.
 */
import type { FromWorker, PickedFile, ResultMessage, RGB, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T;
const form = $<HTMLFormElement>('#form');
const run = $<HTMLButtonElement>('#run'), cancel = $<HTMLButtonElement>('#cancel');
const progress = $<HTMLProgressElement>('#progress'), progressText = $('#progress-text');
const modelStatus = $('#model-status'), result = $('#result'), resultText = $('#result-text'), images = $('#images');
let kind: 'generate' | 'vary' = 'generate';
let reference: RGB | undefined;

const state = { last: undefined as undefined | { device: string; kind: string; shape: number[]; latents: number[]; seconds: number } };
(window as unknown as { __visprompt: typeof state }).__visprompt = state;

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker): void => worker.postMessage(m);

worker.onmessage = (ev: MessageEvent<FromWorker>): void => {
  const m = ev.data;
  switch (m.type) {
    case 'loaded':
      modelStatus.dataset.status = 'loaded';
      modelStatus.textContent = `Opened ${m.root.replace(/^\/model\/?/, '') || 'model'}: ${m.components.join(', ')}${m.warnings.length ? ` (${m.warnings.join('; ')})` : ''}`;
      form.width.placeholder = String(m.width); form.height.placeholder = String(m.height);
      run.disabled = false;
      break;
    case 'progress':
      progress.value = m.total ? m.step / m.total : 0;
      progress.dataset.stage = m.stage;
      progressText.textContent = `${m.stage} ${m.step}/${m.total}`;
      break;
    case 'result': show(m); break;
    case 'error':
      busy(false);
      result.dataset.status = 'error';
      resultText.textContent = m.message;
      if (modelStatus.dataset.status === 'loading') { modelStatus.dataset.status = 'error'; modelStatus.textContent = m.message; }
      break;
  }
};

function busy(on: boolean): void {
  run.disabled = on || modelStatus.dataset.status !== 'loaded';
  cancel.disabled = !on;
}

function open(files: PickedFile[]): void {
  if (!files.length) return;
  modelStatus.dataset.status = 'loading';
  modelStatus.textContent = `Opening ${files.length} file(s)…`;
  const q = new URLSearchParams(location.search);
  const int = (k: string): number | undefined => (q.has(k) ? Number(q.get(k)) : undefined);
  send({ type: 'load', files, options: { unetHeads: int('unetHeads'), textHeads: int('textHeads') } });
}

// <input webkitdirectory>: webkitRelativePath keeps the folder structure ("tiny-sd15/unet/config.json").
$<HTMLInputElement>('#folder').onchange = (e): void => {
  const list = [...((e.target as HTMLInputElement).files ?? [])];
  open(list.map((f) => ({ path: f.webkitRelativePath || f.name, blob: f })));
};
$<HTMLInputElement>('#single').onchange = (e): void => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f) open([{ path: f.name, blob: f }]);
};

// File System Access API where the browser has it (Chromium): the same files, picked as a folder handle.
interface DirHandle { kind: 'directory'; name: string; values(): AsyncIterable<DirHandle | FileHandle> }
interface FileHandle { kind: 'file'; name: string; getFile(): Promise<File> }
const picker = (window as unknown as { showDirectoryPicker?: () => Promise<DirHandle> }).showDirectoryPicker;
if (picker) {
  const button = $<HTMLButtonElement>('#pick-folder');
  button.hidden = false;
  button.onclick = async (): Promise<void> => {
    const dir = await picker().catch(() => undefined);
    if (!dir) return;
    const files: PickedFile[] = [];
    const walk = async (d: DirHandle, prefix: string): Promise<void> => {
      for await (const h of d.values()) {
        if (h.kind === 'file') files.push({ path: `${prefix}${h.name}`, blob: await h.getFile() });
        else await walk(h, `${prefix}${h.name}/`);
      }
    };
    await walk(dir, `${dir.name}/`);
    open(files);
  };
}

for (const tab of document.querySelectorAll<HTMLButtonElement>('.tabs button')) {
  tab.onclick = (): void => {
    kind = tab.dataset.kind as typeof kind;
    form.dataset.kind = kind;
    for (const t of document.querySelectorAll('.tabs button')) t.setAttribute('aria-selected', String(t === tab));
    run.textContent = kind === 'vary' ? 'Vary' : 'Generate';
  };
}

// The reference image, decoded by the browser to 8-bit RGB (no color management, alpha dropped as PIL's convert('RGB')).
$<HTMLInputElement>('#reference').onchange = async (e): Promise<void> => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (!f) { reference = undefined; return; }
  const bmp = await createImageBitmap(f, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const c = new OffscreenCanvas(bmp.width, bmp.height);
  const ctx = c.getContext('2d')!;
  ctx.drawImage(bmp, 0, 0);
  const rgba = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
  const data = new Uint8Array(bmp.width * bmp.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { data[j] = rgba[i]!; data[j + 1] = rgba[i + 1]!; data[j + 2] = rgba[i + 2]!; }
  reference = { width: bmp.width, height: bmp.height, data };
};

const num = (name: string): number | undefined => {
  const v = (form.elements.namedItem(name) as HTMLInputElement).value.trim();
  return v === '' ? undefined : Number(v);
};
const text = (name: string): string => (form.elements.namedItem(name) as HTMLInputElement).value;

form.onsubmit = (e): void => {
  e.preventDefault();
  const r = {
    prompt: text('prompt'), negativePrompt: text('negativePrompt'), steps: num('steps') ?? 20, guidance: num('guidance') ?? 7.5,
    width: num('width'), height: num('height'), seed: num('seed') ?? 0, device: text('device') as 'auto' | 'webgpu' | 'wasm',
  };
  if (kind === 'vary') {
    if (!reference) { result.dataset.status = 'error'; resultText.textContent = 'choose a reference image'; return; }
    send({ type: 'vary', ...r, reference, inversionPrompt: text('inversionPrompt'), lambdaP: num('lambdaP') ?? 1 });
  } else {
    send({ type: 'generate', ...r });
  }
  result.dataset.status = 'running';
  resultText.textContent = 'Running…';
  busy(true);
};
cancel.onclick = (): void => send({ type: 'cancel' });

function show(m: ResultMessage): void {
  busy(false);
  images.replaceChildren();
  m.images.forEach((im, i) => {
    const c = document.createElement('canvas');
    c.width = im.width; c.height = im.height;
    const rgba = new Uint8ClampedArray(im.width * im.height * 4);
    for (let p = 0, q = 0; q < im.data.length; p += 4, q += 3) { rgba[p] = im.data[q]!; rgba[p + 1] = im.data[q + 1]!; rgba[p + 2] = im.data[q + 2]!; rgba[p + 3] = 255; }
    c.getContext('2d')!.putImageData(new ImageData(rgba, im.width, im.height), 0, 0);
    const a = document.createElement('a');
    a.textContent = 'Download PNG';
    a.download = `visprompt-${m.kind}-${i}.png`;
    c.toBlob((b) => { if (b) a.href = URL.createObjectURL(b); }, 'image/png');
    const fig = document.createElement('figure');
    fig.append(c, document.createElement('br'), a);
    images.append(fig);
  });
  const device = m.device === 'webgpu' ? 'WebGPU' : 'WebAssembly';
  resultText.textContent = `${m.kind} on ${device} in ${m.seconds.toFixed(1)} s`;
  state.last = { device: m.device, kind: m.kind, shape: m.latents.shape, latents: Array.from(m.latents.data), seconds: m.seconds };
  result.dataset.status = 'done';
  result.dataset.device = m.device;
}
