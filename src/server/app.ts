/**
 * The HTTP server: the job API (every job kind, status, live progress over Server-Sent Events, result
 * files, cancel, delete), uploads, models, the AUTOMATIC1111-compatible subset, /openapi.json
 * generated from the request schemas that validate input, and the web UI's static files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import { Type } from 'typebox';
import { Value } from 'typebox/value';
import type { JobEvents, JobEvent } from './events.js';
import { HttpError } from './http-error.js';
import type { ModelCache, ModelEntry } from './models.js';
import type { JobQueue } from './queue.js';
import { checkControls, checkNames } from './runner.js';
import { isUserError } from './execute.js';
import {
  A1111Img2Img, A1111Txt2Img, ErrorResponse, IMAGE_FIELDS, JOB_KINDS, JOB_SCHEMAS, JobRecord, ModelInfo, UploadResponse,
  type A1111Img2ImgT, type A1111Txt2ImgT, type JobKind, type JobRecordT,
} from './schemas.js';
import { JobStore, TERMINAL } from './store.js';
import { base64Bytes, Uploads } from './uploads.js';
import { SCHEDULERS } from '../schedulers/index.js';

export interface ServerOptions {
  models: ModelCache;
  store: JobStore;
  uploads: Uploads;
  queue: JobQueue;
  events: JobEvents;
  /** Bearer token required on /api and /sdapi (undefined: none). */
  token?: string;
  /** Requests per minute per client address. */
  rateLimit: number;
  /** Allowed cross-origin requester (undefined: CORS off). */
  corsOrigin?: string;
  /** Largest request body, bytes (uploads travel in it). */
  bodyLimit: number;
  /** Folder of the built web UI (default: dist/web beside this package). */
  webRoot?: string;
  logger?: boolean;
}

export const DEFAULT_WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');

/** Ajv's errors as "field: what is wrong" (the field path without the "body/" prefix). */
function formatValidation(errors: readonly { instancePath: string; message?: string; keyword: string; params: Record<string, unknown> }[], where: string): Error {
  const e = errors[0]!;
  let field = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (e.keyword === 'required') field = [field, String(e.params.missingProperty)].filter(Boolean).join('.');
  if (e.keyword === 'additionalProperties') field = [field, String(e.params.additionalProperty)].filter(Boolean).join('.');
  let msg = e.message ?? 'is invalid';
  if (e.keyword === 'enum') msg = `must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
  if (e.keyword === 'additionalProperties') msg = 'is not a parameter of this job (check the name against /openapi.json)';
  if (e.keyword === 'required') msg = 'is required';
  return new HttpError(400, `${field || where}: ${msg}`);
}

/** A1111's sampler names (lower-cased) -> visprompt's --scheduler names. */
const A1111_SAMPLERS: Record<string, string> = {
  ddim: 'ddim', ddpm: 'ddpm', euler: 'euler', 'euler a': 'euler-a', 'dpm++ 2m': 'dpm++2m', 'dpm++ 2m karras': 'dpm++2m-karras',
  'dpm++ 2m sde': 'dpm++2m-sde', plms: 'pndm', pndm: 'pndm', lms: 'lms', heun: 'heun', unipc: 'unipc', lcm: 'lcm',
};
/** A1111's `sampler_name` as a visprompt scheduler name ("Euler a" -> euler-a); unknown names are a 400. */
export function a1111Scheduler(name: string): string {
  const s = A1111_SAMPLERS[name.trim().toLowerCase()] ?? name.trim().toLowerCase();
  if (!(SCHEDULERS as readonly string[]).includes(s)) throw new HttpError(400, `sampler_name: ${JSON.stringify(name)} is not available (visprompt has: ${SCHEDULERS.join(', ')}; A1111's "DDIM" is ddim)`);
  return s;
}
/** The A1111 display name of each scheduler (for /sdapi/v1/samplers). */
const A1111_NAMES: Record<string, string> = {
  ddim: 'DDIM', ddpm: 'DDPM', euler: 'Euler', 'euler-a': 'Euler a', 'dpm++2m': 'DPM++ 2M', 'dpm++2m-karras': 'DPM++ 2M Karras',
  'dpm++2m-sde': 'DPM++ 2M SDE', pndm: 'PLMS', lms: 'LMS', heun: 'Heun', unipc: 'UniPC', lcm: 'LCM',
};

export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
    schemaErrorFormatter: (errors, where) => formatValidation(errors as never, where),
  });

  // Errors: a JSON body naming the field; 5xx only for our own bugs (logged).
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    let status = err instanceof HttpError ? err.statusCode : isUserError(err) ? 400 : err.statusCode ?? 500;
    let message = err.message;
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (err instanceof SyntaxError && status === 400)) message = `body: not valid JSON (${err.message})`;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') { status = 413; message = `body: request larger than the ${o.bodyLimit}-byte limit`; }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = `content-type: ${req.headers['content-type'] ?? 'none'} is not accepted here`;
    if (status >= 500) req.log.error(err);
    void reply.status(status).send({ error: message, statusCode: status });
  });
  app.setNotFoundHandler((req, reply) => { void reply.status(404).send({ error: `${req.method} ${req.url.split('?')[0]}: no such route`, statusCode: 404 }); });

  // Raw image uploads (POST /api/uploads with an image content type).
  app.addContentTypeParser(['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/tiff', 'application/octet-stream'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  await app.register(rateLimit, {
    max: o.rateLimit,
    timeWindow: 60_000,
    errorResponseBuilder: (_req, ctx) => new HttpError(429, `rate limit: more than ${ctx.max} requests a minute from this client; retry in ${Math.ceil(ctx.ttl / 1000)} s`) as unknown as object,
  });

  // Bearer auth on the API; the UI and the OpenAPI document are public.
  app.addHook('onRequest', async (req, reply) => {
    if (o.corsOrigin) {
      void reply.header('access-control-allow-origin', o.corsOrigin).header('vary', 'origin');
      if (req.method === 'OPTIONS') {
        return reply.header('access-control-allow-headers', 'authorization, content-type').header('access-control-allow-methods', 'GET, POST, DELETE').status(204).send();
      }
    }
    if (!o.token || !/^\/(api|sdapi)\//.test(req.url)) return;
    const header = req.headers.authorization;
    const given = header?.startsWith('Bearer ') ? header.slice(7) : (req.query as Record<string, string | undefined>)?.token;
    if (given !== o.token) throw new HttpError(401, given === undefined ? 'authorization: missing bearer token (Authorization: Bearer <token>)' : 'authorization: wrong token');
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'visprompt', version: '0.1.0', description: 'Stable Diffusion steered by image prompts: a job queue with live progress. Parameters mean what the CLI flags of the same names mean.' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
        schemas: { JobRecord: JobRecord as never, ModelInfo: ModelInfo as never, Upload: UploadResponse as never, Error: ErrorResponse as never },
      },
    },
  });

  // ---------- models ----------
  const sdModels = (): ModelEntry[] => o.models.list().filter((m) => m.kind === 'pipeline' || m.kind === 'single-file');
  app.get('/api/models', { schema: { summary: 'models under --models with their family', tags: ['models'] } }, async () => ({ models: o.models.list(), loaded: o.models.loaded() }));

  // ---------- uploads ----------
  app.post('/api/uploads', {
    schema: { summary: 'upload an image (raw bytes with an image/* content type, or JSON {"data": "data:...;base64,..."})', tags: ['uploads'] },
  }, async (req, reply) => {
    const body = req.body as unknown;
    let bytes: Buffer;
    if (Buffer.isBuffer(body)) bytes = body;
    else if (body && typeof body === 'object' && typeof (body as { data?: unknown }).data === 'string') bytes = base64Bytes((body as { data: string }).data, 'data');
    else throw new HttpError(400, 'body: send the image bytes (content-type image/png, image/jpeg, ...) or JSON {"data": "<data URL>"}');
    const up = await o.uploads.store(bytes, 'image');
    return reply.status(201).send(up);
  });
  app.get('/api/uploads/:id', { schema: { summary: 'an uploaded image', tags: ['uploads'], params: Type.Object({ id: Type.String() }) } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const p = o.uploads.pathOf(id, 'id');
    return reply.type(await o.uploads.contentType(id)).header('cache-control', 'private, max-age=31536000, immutable').send(fs.createReadStream(p));
  });

  // ---------- jobs ----------
  /** Request checks that need the models folder and uploads; data URLs become upload ids. */
  async function prepare(kind: JobKind, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const p = { ...body };
    const all = o.models.list();
    const find = (name: unknown, field: string, kinds: string[]): ModelEntry => {
      if (typeof name !== 'string') throw new HttpError(400, `${field}: required`);
      if (name.split(/[\\/]/).includes('..') || path.isAbsolute(name) || name.includes('\0')) throw new HttpError(400, `${field}: ${JSON.stringify(name)} is not a name under the models folder (no absolute paths or "..")`);
      const m = all.find((e) => e.name === name);
      if (!m || !kinds.includes(m.kind)) {
        const names = all.filter((e) => kinds.includes(e.kind)).map((e) => e.name);
        throw new HttpError(404, `${field}: unknown model ${JSON.stringify(name)} (available: ${names.join(', ') || 'none'})`);
      }
      return m;
    };
    const model = find(p.model, 'model', ['pipeline', 'single-file']);
    if (kind === 'generate' && model.family !== 'ddpm' && p.prompt === undefined) throw new HttpError(400, 'prompt: required for text-conditioned models');
    if (Array.isArray(p.controlnet)) {
      (p.controlnet as unknown[]).forEach((n, j) => find(n, `controlnet[${j}]`, ['controlnet']));
      checkControls(p as { controlnet: string[]; controlImage: string[]; controlScale: number[] });
    }
    if (p.clip !== undefined) find(p.clip, 'clip', ['clip']);
    for (const f of ['attribute', 'aligner'] as const) if (typeof p[f] === 'string') o.models.file(p[f], f);
    checkNames(o, p as Parameters<typeof checkNames>[1]);
    if (kind === 'inject' && p.gamma !== undefined && p.gammaRamp !== undefined) throw new HttpError(400, 'gamma: give gamma or gammaRamp, not both');
    if (kind === 'fuse' && Array.isArray(p.ipAdapter) && p.ipAdapter.length > 0 && Number(p.pnoSteps) > 0) throw new HttpError(400, 'ipAdapter: not with pnoSteps > 0 (Prompt-Noise Optimization runs the UNet without IP-Adapters)');
    if (kind === 'fuse' && Array.isArray(p.controlnet) && p.controlnet.length > 0 && Number(p.pnoSteps) > 0) throw new HttpError(400, 'controlnet: not with pnoSteps > 0 (Prompt-Noise Optimization runs the UNet without ControlNets)');
    for (const f of IMAGE_FIELDS[kind]) {
      const v = p[f];
      if (typeof v === 'string') p[f] = await o.uploads.resolveRef(v, f);
      else if (Array.isArray(v)) p[f] = await Promise.all(v.map((x, j) => o.uploads.resolveRef(String(x), `${f}[${j}]`)));
    }
    return p;
  }

  for (const kind of JOB_KINDS) {
    app.post(`/api/jobs/${kind}`, {
      schema: { summary: `queue a ${kind} job`, description: (JOB_SCHEMAS[kind] as { description?: string }).description, tags: ['jobs'], body: JOB_SCHEMAS[kind], security: [{ bearer: [] }] },
    }, async (req, reply) => {
      const params = await prepare(kind, req.body as Record<string, unknown>);
      const rec = await o.queue.submit(kind, params);
      return reply.status(202).header('location', `/api/jobs/${rec.id}`).send(rec);
    });
  }

  const IdParams = Type.Object({ id: Type.String({ description: 'job id' }) });
  const withProgress = (r: JobRecordT): JobRecordT => {
    const p = o.events.latest.get(r.id);
    if (!p || TERMINAL.includes(r.status)) return r;
    const { preview: _preview, ...rest } = p;
    return { ...r, progress: rest };
  };
  app.get('/api/jobs', {
    schema: { summary: 'jobs, newest first', tags: ['jobs'], querystring: Type.Object({ status: Type.Optional(Type.String()), limit: Type.Optional(Type.String({ pattern: '^\\d+$' })) }) },
  }, async (req) => {
    const q = req.query as { status?: string; limit?: string };
    let jobs = o.store.list().reverse();
    if (q.status) jobs = jobs.filter((j) => j.status === q.status);
    return { jobs: jobs.slice(0, q.limit ? Number(q.limit) : 500).map(withProgress), ...(await o.queue.counts()) };
  });
  app.get('/api/jobs/:id', { schema: { summary: 'a job: status, progress, parameters, result files', tags: ['jobs'], params: IdParams } }, async (req) => withProgress(o.store.need((req.params as { id: string }).id)));
  app.post('/api/jobs/:id/cancel', { schema: { summary: 'cancel a queued or running job', tags: ['jobs'], params: IdParams } }, async (req) => o.queue.cancel((req.params as { id: string }).id));
  app.post('/api/jobs/:id/rerun', { schema: { summary: 'queue the same job again with the same seed (exact re-run)', tags: ['jobs'], params: IdParams } }, async (req, reply) => {
    const rec = o.store.need((req.params as { id: string }).id);
    const params = { ...rec.params, ...(rec.seed !== undefined && 'seed' in JOB_SCHEMAS[rec.kind].properties ? { seed: rec.seed } : {}) };
    return reply.status(202).send(await o.queue.submit(rec.kind, params));
  });
  app.delete('/api/jobs/:id', { schema: { summary: 'delete a job and its files (canceling it first)', tags: ['jobs'], params: IdParams } }, async (req, reply) => {
    await o.queue.remove((req.params as { id: string }).id);
    return reply.status(204).send();
  });
  app.get('/api/jobs/:id/files/:name', { schema: { summary: 'a result file', tags: ['jobs'], params: Type.Object({ id: Type.String(), name: Type.String() }) } }, async (req, reply) => {
    const { id, name } = req.params as { id: string; name: string };
    const p = o.store.file(id, name);
    return reply.type(name.endsWith('.png') ? 'image/png' : 'application/octet-stream').send(fs.createReadStream(p));
  });
  app.get('/api/jobs/:id/events', { schema: { summary: 'live progress (Server-Sent Events: status, progress with step/total/etaSeconds/preview)', tags: ['jobs'], params: IdParams } }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const rec = o.store.need(id);
    sse(req, reply, id, rec);
  });

  function sse(req: FastifyRequest, reply: FastifyReply, id: string, rec: JobRecordT): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...(o.corsOrigin ? { 'access-control-allow-origin': o.corsOrigin } : {}) });
    const send = (event: string, data: unknown): void => { res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`); };
    const close = (): void => { o.events.off('event', on); clearInterval(ping); res.end(); };
    const on = (e: JobEvent): void => {
      if (e.id !== id) return;
      if (e.type === 'progress') send('progress', e.progress);
      else { send('status', e.record); if (TERMINAL.includes(e.record.status)) close(); }
    };
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    o.events.on('event', on);
    req.raw.on('close', () => { o.events.off('event', on); clearInterval(ping); });
    send('status', withProgress(rec));
    const p = o.events.latest.get(id);
    if (p) send('progress', p);
    if (TERMINAL.includes(rec.status)) close();
  }

  // ---------- the AUTOMATIC1111-compatible subset ----------
  const a1111Model = (b: { override_settings?: Record<string, unknown> }): string => {
    const want = b.override_settings?.sd_model_checkpoint;
    const list = sdModels();
    if (typeof want === 'string') {
      const m = list.find((e) => e.name === want || e.name === want.replace(/\s*\[[0-9a-f]+\]$/, ''));
      if (!m) throw new HttpError(404, `override_settings.sd_model_checkpoint: unknown model ${JSON.stringify(want)} (available: ${list.map((e) => e.name).join(', ')})`);
      return m.name;
    }
    if (list.length === 0) throw new HttpError(404, 'model: no models under --models');
    return list[0]!.name;
  };
  /** One job per A1111 iteration (n_iter), all queued first, then awaited in order; their images concatenated. */
  async function runSync(kind: JobKind, iterations: Record<string, unknown>[], body: Record<string, unknown>): Promise<{ images: string[]; parameters: Record<string, unknown>; info: string }> {
    const recs: JobRecordT[] = [];
    const all: Record<string, unknown>[] = [];
    for (const mapped of iterations) {
      // The mapped request gets the job schema's defaults and checks, as a request to /api/jobs would.
      const params = Value.Default(JOB_SCHEMAS[kind], mapped) as Record<string, unknown>;
      const bad = Value.Errors(JOB_SCHEMAS[kind], params)[0];
      if (bad) throw new HttpError(400, `${bad.instancePath.replace(/^\//, '') || 'body'}: ${bad.message}`);
      all.push(params);
    }
    for (const params of all) recs.push(await o.queue.submit(kind, await prepare(kind, params)));
    const images: string[] = [], seeds: number[] = [], jobs: string[] = [];
    for (const rec of recs) {
      const done = await o.events.waitFor(rec.id, () => o.store.get(rec.id));
      if (done.status !== 'succeeded') {
        const status = done.status === 'canceled' ? 409 : done.errorType === 'input' ? 400 : done.errorType === 'timeout' ? 504 : 500;
        throw new HttpError(status, `job ${rec.id} ${done.status}${done.error ? `: ${done.error}` : ''}`);
      }
      const pngs = done.files.filter((f) => f.endsWith('.png'));
      if (body.send_images !== false) images.push(...pngs.map((f) => fs.readFileSync(path.join(o.store.folder(done.id), f)).toString('base64')));
      seeds.push(...pngs.map(() => Number(done.seed)));
      jobs.push(done.id);
    }
    return { images, parameters: body, info: JSON.stringify({ job: jobs[0], jobs, seed: seeds[0], all_seeds: seeds, sd_model_name: all[0]!.model, timings: o.store.get(jobs[0]!)?.timings }) };
  }
  /**
   * A1111's iterations: iteration i is seeded with seed + i x batch_size (the seed A1111 gives its first
   * image), so n_iter runs of batch_size images continue the seed sequence; -1 draws one random seed first.
   * Within an iteration the batch_size images come from one noise stream (diffusers' batch), not A1111's
   * per-image seeds.
   */
  const a1111Iterations = (b: A1111Txt2ImgT, extra: Record<string, unknown>): Record<string, unknown>[] => {
    const model = a1111Model(b);
    const base = b.seed >= 0 ? b.seed : Math.floor(Math.random() * 2 ** 32);
    return Array.from({ length: b.n_iter }, (_, i) => ({
      model, prompt: b.prompt, negativePrompt: b.negative_prompt, steps: b.steps, guidance: b.cfg_scale, width: b.width, height: b.height,
      numImages: b.batch_size, seed: base + i * b.batch_size, ...extra,
    }));
  };
  app.post('/sdapi/v1/txt2img', { schema: { summary: 'A1111 txt2img (runs a generate job and waits for it)', tags: ['a1111'], body: A1111Txt2Img } }, async (req) => {
    const b = req.body as A1111Txt2ImgT;
    const extra = { scheduler: a1111Scheduler(b.sampler_name), ...(b.eta !== undefined ? { eta: b.eta } : {}), ...(b.clip_skip !== undefined && b.clip_skip > 1 ? { clipSkip: b.clip_skip - 1 } : {}) };
    return runSync('generate', a1111Iterations(b, extra), b as unknown as Record<string, unknown>);
  });
  app.post('/sdapi/v1/img2img', { schema: { summary: 'A1111 img2img, mapped to an image-prompt variation (vary, InDetail-IP) of init_images[0]', tags: ['a1111'], body: A1111Img2Img } }, async (req) => {
    const b = req.body as A1111Img2ImgT;
    const image = (await o.uploads.store(base64Bytes(b.init_images[0]!, 'init_images[0]'), 'init_images[0]')).id;
    return runSync('vary', a1111Iterations(b, { image }), { ...b, init_images: [`<${b.init_images.length} image(s)>`] });
  });
  app.get('/sdapi/v1/sd-models', { schema: { summary: 'A1111 model list', tags: ['a1111'] } }, async () => sdModels().map((m) => ({
    title: m.name, model_name: m.name, hash: null, sha256: null, filename: m.name, config: null, family: m.family,
  })));
  app.get('/sdapi/v1/samplers', { schema: { summary: 'A1111 sampler list', tags: ['a1111'] } }, async () => SCHEDULERS.map((s) => ({ name: A1111_NAMES[s] ?? s, aliases: [s], options: {} })));
  app.get('/sdapi/v1/options', { schema: { summary: 'A1111 options (the default model)', tags: ['a1111'] } }, async () => ({ sd_model_checkpoint: sdModels()[0]?.name ?? null }));
  app.get('/sdapi/v1/progress', { schema: { summary: 'A1111 progress of the running job', tags: ['a1111'] } }, async () => {
    const counts = await o.queue.counts();
    const [id, p] = [...o.events.latest.entries()].pop() ?? [];
    const fraction = p ? (p.stage === 'decode' ? 0.98 : p.step / Math.max(1, p.total)) : 0;
    return {
      progress: fraction, eta_relative: p?.etaSeconds ?? 0,
      state: { job: id ?? '', job_count: counts.queued + counts.running, sampling_step: p?.step ?? 0, sampling_steps: p?.total ?? 0, interrupted: false, skipped: false },
      current_image: p?.preview?.replace(/^data:image\/png;base64,/, '') ?? null, textinfo: p ? `${p.stage} ${p.step}/${p.total}` : null,
    };
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/api/schemas', { schema: { summary: 'the request schema of each job kind (the web form is built from these)', tags: ['jobs'] } }, async () => ({ ...JOB_SCHEMAS }));
  app.get('/api/health', { schema: { summary: 'liveness and queue counts', tags: ['meta'] } }, async () => ({ ok: true, ...(await o.queue.counts()) }));

  // ---------- the web UI ----------
  const webRoot = o.webRoot ?? DEFAULT_WEB_ROOT;
  if (fs.existsSync(path.join(webRoot, 'index.html'))) {
    await app.register(fastifyStatic, { root: webRoot, prefix: '/', index: ['index.html'] });
  } else {
    app.get('/', async (_req, reply) => reply.type('text/html').send('<!doctype html><p>visprompt: the web UI is not built (run <code>npm run build</code>); the API is at <a href="/openapi.json">/openapi.json</a>.</p>'));
  }
  return app;
}
