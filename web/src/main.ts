/**
 * The visprompt web UI. The form of each job kind is built from the server's request schemas
 * (GET /api/schemas: the same schemas that validate requests and generate /openapi.json), so names,
 * defaults, ranges and help texts are the CLI's. Progress arrives as Server-Sent Events.
 */

interface Schema {
  type?: string; description?: string; default?: unknown; enum?: string[]; minimum?: number; maximum?: number;
  properties?: Record<string, Schema>; required?: string[]; items?: Schema | Schema[]; anyOf?: Schema[]; prefixItems?: Schema[];
}
interface ModelInfo { name: string; kind: string; family: string }
interface JobRecord {
  id: string; kind: string; status: string; params: Record<string, unknown>; seed?: string; files: string[]; error?: string;
  createdAt: string; timings?: { queueMs?: number; runMs?: number }; progress?: Progress;
}
interface Progress { stage: string; step: number; total: number; etaSeconds?: number; preview?: string; detail?: string }

const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T;
const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};

const KIND_LABELS: Record<string, string> = { vary: 'Vary', generate: 'Generate', inject: 'Inject', edit: 'Edit', fuse: 'Fuse', invert: 'Invert' };
const KIND_HELP: Record<string, string> = {
  vary: 'Images from a reference image (InDetail-IP and baselines)', generate: 'Text to image', inject: 'InjectFusion: content of one image into another',
  edit: 'Asyrp: edit an image with an attribute network', fuse: 'Visual Concept Fusion: prompt + reference through an aligner', invert: 'DDIM inversion (writes the latent chain)',
};
/** Shown above "More parameters"; the rest go below it. */
const MAIN_ORDER = ['image', 'content', 'mask', 'prompt', 'negativePrompt', 'inversionPrompt', 'method', 'guidanceMode', 'lambdaP', 'lambdaG', 'stratifiedSteps',
  'tAlign', 'startStep', 'startLayer', 'gamma', 'strength', 'attribute', 'aligner', 'fusion', 'steps', 'guidance', 'seed', 'controlnet', 'controlImage', 'controlScale'];
const MAIN_FIELDS = new Set(MAIN_ORDER);
/** Parameters that only one vary method reads (by the method name their help text starts with). */
const METHOD_OF: [RegExp, string][] = [[/^InDetail-IP:/, 'indetail-ip'], [/^kv-concat/, 'kv-concat'], [/^kv-replace/, 'kv-replace']];

let token = localStorage.getItem('vp-token') ?? '';
let schemas: Record<string, Schema> = {};
let models: ModelInfo[] = [];
let kind = 'vary';
/** Upload ids of the image fields of the form. */
const images: Record<string, string | undefined> = {};
const selected = new Set<string>();
let currentJob: string | undefined;

function withToken(url: string): string {
  return token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url;
}

async function api<T>(method: string, url: string, body?: unknown, contentType = 'application/json'): Promise<T> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['content-type'] = contentType;
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : contentType === 'application/json' ? JSON.stringify(body) : (body as BodyInit) });
  if (r.status === 401) { askToken(); throw new Error('the server wants a token'); }
  if (r.status === 204) return undefined as T;
  const json = await r.json();
  if (!r.ok) throw new Error((json as { error?: string }).error ?? `HTTP ${r.status}`);
  return json as T;
}

function askToken(): void {
  const t = prompt('API token (visprompt serve --token)', token);
  if (t !== null) { token = t; localStorage.setItem('vp-token', t); void init(); }
}

// ---------------- the form ----------------

function tipFor(s: Schema): string {
  const d = s.description ?? '';
  return s.default !== undefined && !(Array.isArray(s.default) && s.default.length === 0) ? `${d} (default ${JSON.stringify(s.default)})` : d;
}

function label(name: string, s: Schema, control: HTMLElement): HTMLElement {
  const words = name.replace(/([A-Z])/g, ' $1').replace(/^./, (c) => c.toUpperCase());
  const l = el('label', { class: 'field', 'data-field': name }, el('span', {}, words, ' ', el('i', { class: 'tip', title: tipFor(s) }, '?')), control);
  l.title = tipFor(s);
  return l;
}

function dropZone(name: string, s: Schema): HTMLElement {
  const input = el('input', { type: 'file', accept: 'image/*', name, 'data-image': name });
  const thumb = el('img', { alt: '', hidden: '' });
  const text = el('span', {}, 'Drop an image or click');
  const zone = el('div', { class: 'drop', tabindex: '0', title: tipFor(s) }, thumb, text, input);
  const use = async (file: File): Promise<void> => {
    text.textContent = 'uploading...';
    try {
      const up = await api<{ id: string; width: number; height: number }>('POST', '/api/uploads', file, file.type || 'application/octet-stream');
      images[name] = up.id;
      thumb.src = URL.createObjectURL(file);
      thumb.hidden = false;
      text.textContent = `${up.width}x${up.height}`;
    } catch (e) { text.textContent = (e as Error).message; images[name] = undefined; }
  };
  input.addEventListener('change', () => { if (input.files?.[0]) void use(input.files[0]); });
  zone.addEventListener('click', (e) => { if (e.target !== input) input.click(); });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('over'); const f = e.dataTransfer?.files[0]; if (f) void use(f); });
  (zone as HTMLElement & { setUpload?: (id: string) => void }).setUpload = (id: string) => {
    images[name] = id; thumb.src = withToken(`/api/uploads/${id}`); thumb.hidden = false; text.textContent = 'from a previous job';
  };
  return label(name, s, zone);
}

function modelSelect(name: string, s: Schema, kinds: string[], optional: boolean): HTMLElement {
  const sel = el('select', { name });
  if (optional) sel.append(el('option', { value: '' }, '(none)'));
  for (const m of models.filter((x) => kinds.includes(x.kind))) sel.append(el('option', { value: m.name }, m.name));
  return label(name, s, sel);
}

function control(name: string, s: Schema, required: boolean): HTMLElement | undefined {
  const d = s.description ?? '';
  if (name === 'model') return undefined;
  if (name === 'controlnet') return modelSelect(name, s, ['controlnet'], true);
  if (name === 'controlImage') return dropZone(name, s);
  if (name === 'controlScale') return label(name, s, el('input', { type: 'number', name, step: '0.05', placeholder: '1' }));
  if (name === 'clip') return modelSelect(name, s, ['clip'], true);
  if (name === 'vaeTiny') return modelSelect(name, s, ['vae-tiny'], true);
  if (name === 'imageEncoder') return modelSelect(name, s, ['image-encoder', 'clip'], true);
  if (name === 'attribute' || name === 'aligner') return modelSelect(name, s, ['weights'], false);
  if (/^an image/.test(d)) return dropZone(name, s);
  if (s.enum) {
    const sel = el('select', { name });
    if (!required && s.default === undefined) sel.append(el('option', { value: '' }, '(default)'));
    for (const v of s.enum) sel.append(el('option', { value: v }, v));
    if (s.default !== undefined) sel.value = String(s.default);
    return label(name, s, sel);
  }
  if (s.type === 'boolean') {
    const c = el('input', { type: 'checkbox', name });
    c.checked = s.default === true;
    return label(name, s, c);
  }
  if (s.type === 'integer' || s.type === 'number') {
    const i = el('input', { type: 'number', name, step: s.type === 'integer' ? '1' : 'any' });
    if (s.minimum !== undefined) i.min = String(s.minimum);
    if (s.maximum !== undefined) i.max = String(s.maximum);
    if (s.default !== undefined) i.value = String(s.default);
    else i.placeholder = 'default';
    return label(name, s, i);
  }
  if (name === 'seed') return label(name, s, el('input', { type: 'text', name, inputmode: 'numeric', placeholder: 'random' }));
  if (name === 'gammaRamp') return label(name, s, el('input', { type: 'text', name, placeholder: 'a:b, e.g. 0.3:0.7' }));
  // a text, or a text-or-list (vary's prompt: one prompt here; the CLI repeats --prompt for a list)
  if (s.type === 'string' || s.anyOf?.some((a) => a.type === 'string')) {
    const long = /prompt/i.test(name);
    const t = long ? el('textarea', { name, rows: '2' }) : el('input', { type: 'text', name });
    if (typeof s.default === 'string') t.value = s.default;
    return label(name, s, t);
  }
  return undefined;
}

function buildForm(): void {
  const schema = schemas[kind]!;
  const main = $('#fields'), adv = $('#advanced');
  main.replaceChildren();
  adv.replaceChildren();
  for (const k of Object.keys(images)) delete images[k];
  const rank = (n: string): number => (MAIN_ORDER.includes(n) ? MAIN_ORDER.indexOf(n) : MAIN_ORDER.length);
  const entries = Object.entries(schema.properties ?? {}).sort(([a], [b]) => rank(a) - rank(b));
  for (const [name, s] of entries) {
    const c = control(name, s, schema.required?.includes(name) ?? false);
    if (!c) continue;
    (MAIN_FIELDS.has(name) ? main : adv).append(c);
  }
  const modelSel = $<HTMLSelectElement>('#model');
  const keep = modelSel.value;
  modelSel.replaceChildren(...models.filter((m) => m.kind === 'pipeline' || m.kind === 'single-file').map((m) => el('option', { value: m.name }, `${m.name} (${m.family})`)));
  if (keep) modelSel.value = keep;
  for (const b of document.querySelectorAll<HTMLButtonElement>('#kinds button')) b.setAttribute('aria-selected', String(b.dataset.kind === kind));
  methodVisibility();
}

/** Show only the parameters the chosen vary method reads. */
function methodVisibility(): void {
  const method = ($<HTMLSelectElement>('#job-form [name=method]') as HTMLSelectElement | null)?.value;
  const props = schemas[kind]?.properties ?? {};
  for (const [name, s] of Object.entries(props)) {
    const m = METHOD_OF.find(([re]) => re.test(s.description ?? ''));
    const f = document.querySelector<HTMLElement>(`#job-form [data-field="${name}"]`);
    if (f && m) f.hidden = method !== undefined && method !== m[1];
  }
}

function readForm(): Record<string, unknown> {
  const form = $<HTMLFormElement>('#job-form');
  const props = schemas[kind]!.properties ?? {};
  const out: Record<string, unknown> = { model: $<HTMLSelectElement>('#model').value };
  for (const [name, s] of Object.entries(props)) {
    if (name === 'model') continue;
    const e = form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement | null;
    const hidden = (e?.closest('[data-field]') as HTMLElement | null)?.hidden;
    if (hidden) continue;
    if (name === 'controlnet') { const v = (e as HTMLSelectElement | null)?.value; out.controlnet = v ? [v] : []; continue; }
    if (name === 'controlImage') { out.controlImage = out.controlnet && (out.controlnet as string[]).length && images.controlImage ? [images.controlImage] : []; continue; }
    if (name === 'controlScale') { const v = (e as HTMLInputElement | null)?.value; out.controlScale = v && (out.controlnet as string[] | undefined)?.length ? [Number(v)] : []; continue; }
    if (e instanceof HTMLInputElement && e.type === 'file') { if (images[name]) out[name] = images[name]; continue; }
    if (!e) continue;
    if (e instanceof HTMLInputElement && e.type === 'checkbox') { out[name] = e.checked; continue; }
    const v = e.value;
    if (v === '') continue;
    if (name === 'gammaRamp') { out[name] = v.split(':').map(Number); continue; }
    if (name === 'seed') { out[name] = /^-?\d{1,15}$/.test(v) ? Number(v) : v; continue; }
    out[name] = s.type === 'integer' || s.type === 'number' ? Number(v) : v;
  }
  // Live previews where the job kind offers them (about ten per run).
  if ('previewEvery' in props && out.previewEvery === undefined) out.previewEvery = Math.max(1, Math.round(Number(out.steps ?? 50) / 10));
  return out;
}

/** "Use these settings again": the form filled from a job's recorded parameters. */
function fillForm(rec: JobRecord): void {
  kind = rec.kind;
  buildForm();
  const form = $<HTMLFormElement>('#job-form');
  $<HTMLSelectElement>('#model').value = String(rec.params.model ?? '');
  for (const [name, v] of Object.entries(rec.params)) {
    const field = document.querySelector<HTMLElement>(`#job-form [data-field="${name}"]`);
    if (!field) continue;
    const drop = field.querySelector('.drop') as (HTMLElement & { setUpload?: (id: string) => void }) | null;
    if (drop) { const id = Array.isArray(v) ? v[0] : v; if (typeof id === 'string') drop.setUpload?.(id); continue; }
    const e = form.elements.namedItem(name) as HTMLInputElement | null;
    if (!e) continue;
    if (e.type === 'checkbox') e.checked = v === true;
    else if (Array.isArray(v)) e.value = name === 'gammaRamp' ? v.join(':') : String(v[0] ?? '');
    else e.value = String(v);
  }
  if (rec.seed && form.elements.namedItem('seed')) (form.elements.namedItem('seed') as HTMLInputElement).value = rec.seed;
  methodVisibility();
  $('#editor').scrollIntoView({ behavior: 'smooth' });
}

// ---------------- running a job ----------------

async function submit(e: Event): Promise<void> {
  e.preventDefault();
  $('#form-error').textContent = '';
  try {
    const rec = await api<JobRecord>('POST', `/api/jobs/${kind}`, readForm());
    void follow(rec);
    void refreshGallery();
  } catch (err) {
    $('#form-error').textContent = (err as Error).message;
  }
}

/** Live progress of a job over Server-Sent Events (read with fetch, so the token header travels). */
async function follow(rec: JobRecord): Promise<void> {
  currentJob = rec.id;
  const bar = $<HTMLProgressElement>('#progress-bar'), text = $('#progress-text'), preview = $<HTMLImageElement>('#preview');
  $('#current').hidden = false;
  $('#current-kind').textContent = `${rec.kind} ${rec.id}`;
  bar.value = 0;
  text.textContent = 'queued';
  preview.hidden = true;
  const res = await fetch(`/api/jobs/${rec.id}/events`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const chunk = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const type = /^event: (\w+)/m.exec(chunk)?.[1];
      const data = /^data: (.*)$/m.exec(chunk)?.[1];
      if (!type || !data) continue;
      const d = JSON.parse(data);
      if (type === 'progress') {
        const p = d as Progress;
        bar.value = p.total ? p.step / p.total : 0;
        bar.dataset.stage = p.stage;
        text.textContent = `${p.stage} ${p.step}/${p.total}${p.etaSeconds !== undefined ? ` · ETA ${p.etaSeconds.toFixed(1)} s` : ''}${p.detail ? ` · ${p.detail}` : ''}`;
        if (p.preview) { preview.src = p.preview; preview.hidden = false; }
      } else if (type === 'status') {
        const r = d as JobRecord;
        if (r.status === 'running' && text.textContent === 'queued') text.textContent = 'starting';
        if (['succeeded', 'failed', 'canceled'].includes(r.status)) {
          text.textContent = r.status + (r.error ? `: ${r.error}` : '');
          bar.value = r.status === 'succeeded' ? 1 : bar.value;
          void refreshGallery();
        }
      }
    }
  }
  if (currentJob === rec.id) setTimeout(() => { if (currentJob === rec.id) $('#current').hidden = true; }, 1500);
}

// ---------------- gallery and compare ----------------

function fileUrl(rec: JobRecord, f: string): string { return withToken(`/api/jobs/${rec.id}/files/${f}`); }

function card(rec: JobRecord): HTMLElement {
  const pngs = rec.files.filter((f) => f.endsWith('.png'));
  const pics = el('div', { class: 'pics' }, ...pngs.map((f) => el('a', { href: fileUrl(rec, f), target: '_blank' }, el('img', { src: fileUrl(rec, f), alt: `${rec.kind} result`, loading: 'lazy' }))));
  if (!pngs.length) pics.append(el('div', { class: 'nopic' }, rec.status === 'succeeded' ? rec.files.join(', ') : rec.status));
  const p = rec.params;
  const title = String(p.prompt ?? p.inversionPrompt ?? '') || '(no prompt)';
  const meta = el('div', { class: 'meta' },
    el('b', {}, rec.kind), ' ', el('span', { class: `status ${rec.status}` }, rec.status), el('br'),
    el('span', { class: 'prompt', title }, title), el('br'),
    el('small', {}, `${p.model} · ${p.method ?? ''} steps ${p.steps ?? ''} · seed ${rec.seed ?? '-'}${rec.timings?.runMs ? ` · ${(rec.timings.runMs / 1000).toFixed(1)} s` : ''}`),
    ...(rec.error ? [el('div', { class: 'err' }, rec.error)] : []));
  const again = el('button', { type: 'button', class: 'again' }, 'Use these settings');
  again.addEventListener('click', () => fillForm(rec));
  const cmp = el('input', { type: 'checkbox', class: 'cmp' });
  cmp.checked = selected.has(rec.id);
  cmp.addEventListener('change', () => { if (cmp.checked) selected.add(rec.id); else selected.delete(rec.id); void showCompare(); });
  const del = el('button', { type: 'button', class: 'ghost danger' }, 'Delete');
  del.addEventListener('click', async () => { await api('DELETE', `/api/jobs/${rec.id}`); selected.delete(rec.id); void refreshGallery(); });
  const buttons = el('div', { class: 'buttons' }, again, el('label', { class: 'cmp-label' }, cmp, ' compare'), del);
  if (rec.status === 'queued' || rec.status === 'running') {
    const c = el('button', { type: 'button', class: 'danger' }, 'Cancel');
    c.addEventListener('click', () => void api('POST', `/api/jobs/${rec.id}/cancel`).then(refreshGallery));
    buttons.append(c);
  }
  return el('article', { class: 'card', 'data-job': rec.id, 'data-status': rec.status }, pics, meta, buttons);
}

let jobsById = new Map<string, JobRecord>();
async function refreshGallery(): Promise<void> {
  const { jobs } = await api<{ jobs: JobRecord[] }>('GET', '/api/jobs?limit=200');
  jobsById = new Map(jobs.map((j) => [j.id, j]));
  $('#gallery').replaceChildren(...jobs.map(card));
  if (!jobs.length) $('#gallery').append(el('p', { class: 'empty' }, 'No results yet.'));
}

async function showCompare(): Promise<void> {
  const recs = [...selected].map((id) => jobsById.get(id)).filter((r): r is JobRecord => r !== undefined).slice(-2);
  const panel = $('#compare');
  panel.hidden = recs.length < 2;
  if (recs.length < 2) return;
  const keys = [...new Set(recs.flatMap((r) => Object.keys(r.params)))].sort();
  const rows = keys.map((k) => {
    const vals = recs.map((r) => JSON.stringify(r.params[k] ?? null));
    return el('tr', vals[0] !== vals[1] ? { class: 'diff' } : {}, el('th', {}, k), ...vals.map((v) => el('td', {}, v.length > 40 ? `${v.slice(0, 37)}...` : v)));
  });
  const img = (r: JobRecord): HTMLElement => {
    const f = r.files.find((x) => x.endsWith('.png'));
    return el('figure', {}, f ? el('img', { src: fileUrl(r, f), alt: r.id }) : el('div', { class: 'nopic' }, r.status), el('figcaption', {}, `${r.kind} · seed ${r.seed ?? '-'}`));
  };
  $('#compare-body').replaceChildren(el('div', { class: 'side' }, ...recs.map(img)), el('table', {}, ...rows));
}

// ---------------- start ----------------

async function init(): Promise<void> {
  try {
    schemas = await api<Record<string, Schema>>('GET', '/api/schemas');
    models = (await api<{ models: ModelInfo[] }>('GET', '/api/models')).models;
  } catch (e) { $('#form-error').textContent = (e as Error).message; return; }
  const nav = $('#kinds');
  nav.replaceChildren(...Object.keys(KIND_LABELS).filter((k) => schemas[k]).map((k) => {
    const b = el('button', { type: 'button', role: 'tab', 'data-kind': k, title: KIND_HELP[k] ?? '' }, KIND_LABELS[k]!);
    b.addEventListener('click', () => { kind = k; buildForm(); });
    return b;
  }));
  buildForm();
  await refreshGallery();
  const running = [...jobsById.values()].find((j) => j.status === 'running' || j.status === 'queued');
  if (running) void follow(running);
}

$('#job-form').addEventListener('submit', (e) => void submit(e));
$('#job-form').addEventListener('change', (e) => { if ((e.target as HTMLElement).getAttribute('name') === 'method') methodVisibility(); });
$('#cancel').addEventListener('click', () => { if (currentJob) void api('POST', `/api/jobs/${currentJob}/cancel`).then(refreshGallery); });
$('#refresh').addEventListener('click', () => void refreshGallery());
$('#token-btn').addEventListener('click', askToken);
$('#compare-close').addEventListener('click', () => { selected.clear(); $('#compare').hidden = true; void refreshGallery(); });
setInterval(() => { if (document.visibilityState === 'visible') void refreshGallery().catch(() => undefined); }, 5000);
void init();
