/**
 * The benchmark's outputs: metrics.csv and metrics.md (mean and 95% CI per configuration), per-image.csv,
 * results.json, plots/ (SVG + PNG + Vega-Lite spec) and report.html (settings, the metric table, the
 * skipped files, the plots, and per reference a row of each configuration's images).
 */
import path from 'node:path';
import type { Skipped } from '../eval/evaluate.js';
import type { MethodOptions } from '../methods/index.js';
import { sweptParameters, type GridConfig } from './grid.js';
import type { PlotPoint } from './plots.js';
import type { BenchmarkSettings, MetricName, MetricNetworks, ScoreColumn } from './run.js';
import { writeFileAtomic, writeJsonAtomic } from './store.js';

export interface MetricSummary {
  /** Mean over all scored images. */
  readonly mean: number;
  /** 95% Student-t interval over the per-reference means; null with one reference. */
  readonly ci95: readonly [number, number] | null;
  readonly n: number;
  readonly references: number;
}

export interface ConfigResult {
  readonly config: GridConfig;
  readonly settings: { steps: number; guidance: number; options: MethodOptions };
  readonly references: number;
  readonly images: number;
  readonly metrics: Partial<Record<ScoreColumn, MetricSummary>>;
  readonly fid: { fid: number | null; n_real: number; n_generated: number; note?: string } | undefined;
  /** KID (torchmetrics): mean and population std over the subsets; null with too few images (note says why). */
  readonly kid?: { mean: number | null; std: number | null; subsets: number; subsetSize: number; note?: string } | undefined;
  /** Inception Score of the configuration's images: mean and unbiased std over the splits. */
  readonly inceptionScore?: { mean: number | null; std: number | null; splits: number; n: number; note?: string } | undefined;
  readonly perImage: ({ file: string; reference: string } & Partial<Record<ScoreColumn, number>>)[];
  readonly secondsPerUnit: number | null;
  readonly units: { reference: string; caption: string; files: string[] }[];
}

export interface ReportInput {
  readonly out: string;
  readonly model: string;
  readonly data: string;
  readonly settings: BenchmarkSettings;
  readonly metrics: readonly MetricName[];
  readonly networks: MetricNetworks;
  readonly configs: readonly ConfigResult[];
  readonly skipped: readonly Skipped[];
  readonly references: readonly { id: string; caption: string; file: string }[];
  readonly totalReferences: number;
  readonly reportRows: number;
}

/** Column heads: the papers' names, with the better direction. */
export const METRIC_LABELS: Record<ScoreColumn | 'fid' | 'kid' | 'is', string> = {
  clip_i: 'CLIP-I ↑', clip_t: 'CLIP-T ↑', dino: 'DINO ↑', dino_structure: 'DINO structure (DINO-G ↑ / DINO-C ↓)', lpips: 'LPIPS', fid: 'FID ↓', kid: 'KID ↓', is: 'IS ↑',
};
/** KID / IS cell: mean ± std (the spread over subsets / splits, not a confidence interval). */
const spread = (x: { mean: number | null; std: number | null } | undefined): string => (x?.mean == null ? '—' : x.std != null ? `${x.mean.toPrecision(4)} ± ${x.std.toPrecision(2)}` : x.mean.toPrecision(4));
const COLUMNS = ['clip_i', 'clip_t', 'dino', 'dino_structure', 'lpips'] as const;

function csvField(v: unknown): string {
  const s = v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
const csvLine = (xs: readonly unknown[]): string => `${xs.map(csvField).join(',')}\n`;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(2) : x.toFixed(4));

function cell(m: MetricSummary | undefined): string {
  if (!m) return '—';
  return m.ci95 ? `${fmt(m.mean)} ± ${fmt((m.ci95[1] - m.ci95[0]) / 2)}` : fmt(m.mean);
}

function shownColumns(configs: readonly ConfigResult[]): ScoreColumn[] {
  return COLUMNS.filter((c) => configs.some((r) => r.metrics[c]));
}

function paramsText(c: ConfigResult): string {
  return Object.entries(c.config.params).map(([k, v]) => `${k}=${String(v)}`).join(' ');
}

function csv(input: ReportInput): string {
  const cols = shownColumns(input.configs);
  const params = [...new Set(input.configs.flatMap((c) => Object.keys(c.config.params)))].sort();
  const kid = input.metrics.includes('kid'), is = input.metrics.includes('is');
  let s = csvLine(['config', 'label', 'method', ...params, 'steps', 'guidance', 'references', 'images', ...cols.flatMap((c) => [`${c}_mean`, `${c}_ci95_low`, `${c}_ci95_high`]), 'fid', 'fid_note',
    ...(kid ? ['kid_mean', 'kid_std', 'kid_note'] : []), ...(is ? ['is_mean', 'is_std'] : []), 'seconds_per_reference']);
  for (const c of input.configs) {
    s += csvLine([c.config.id, c.config.label, c.config.method, ...params.map((p) => c.config.params[p]), c.settings.steps, c.settings.guidance, c.references, c.images,
      ...cols.flatMap((k) => { const m = c.metrics[k]; return [m?.mean, m?.ci95?.[0], m?.ci95?.[1]]; }), c.fid?.fid, c.fid?.note,
      ...(kid ? [c.kid?.mean, c.kid?.std, c.kid?.note] : []), ...(is ? [c.inceptionScore?.mean, c.inceptionScore?.std] : []), c.secondsPerUnit?.toFixed(2)]);
  }
  return s;
}

function perImageCsv(input: ReportInput): string {
  const cols = shownColumns(input.configs);
  let s = csvLine(['config', 'reference', 'file', ...cols]);
  for (const c of input.configs) for (const p of c.perImage) s += csvLine([c.config.id, p.reference, p.file, ...cols.map((k) => p[k])]);
  return s;
}

function markdown(input: ReportInput): string {
  const cols = shownColumns(input.configs);
  const fid = input.metrics.includes('fid');
  const kid = input.metrics.includes('kid'), is = input.metrics.includes('is');
  const head = ['configuration', 'references', 'images', ...cols.map((c) => METRIC_LABELS[c]), ...(fid ? ['FID ↓'] : []), ...(kid ? ['KID ↓'] : []), ...(is ? ['IS ↑'] : [])];
  let s = `| ${head.join(' | ')} |\n| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |\n`;
  for (const c of input.configs) {
    s += `| ${[c.config.label.replace(/\|/g, '\\|'), c.references, c.images, ...cols.map((k) => cell(c.metrics[k])), ...(fid ? [c.fid?.fid != null ? fmt(c.fid.fid) : '—'] : []), ...(kid ? [spread(c.kid)] : []), ...(is ? [spread(c.inceptionScore)] : [])].join(' | ')} |\n`;
  }
  s += `\nMean over all images ± half-width of the 95% Student-t interval over the per-reference means (${input.settings.numImages} images per reference).${kid || is ? ' KID and IS: mean ± standard deviation over the subsets / splits.' : ''}\n`;
  const notes = input.configs.flatMap((c) => [c.fid?.note, c.kid?.note, c.inceptionScore?.note].filter((n): n is string => Boolean(n)).map((n) => `- ${c.config.label}: ${n}`));
  if (notes.length) s += `\nNotes:\n${notes.join('\n')}\n`;
  if (input.skipped.length) s += `\nSkipped (${input.skipped.length}):\n${input.skipped.map((x) => `- ${x.file}: ${x.reason}`).join('\n')}\n`;
  return s;
}

function plotPoints(input: ReportInput, pick: (c: ConfigResult) => { series: string; x: number | string | null; baseline?: boolean } | undefined): PlotPoint[] {
  const out: PlotPoint[] = [];
  for (const c of input.configs) {
    const at = pick(c);
    if (!at) continue;
    for (const k of shownColumns(input.configs)) {
      const m = c.metrics[k];
      if (m) out.push({ metric: METRIC_LABELS[k], ...at, mean: m.mean, lo: m.ci95?.[0] ?? null, hi: m.ci95?.[1] ?? null });
    }
    if (c.fid?.fid != null) out.push({ metric: METRIC_LABELS.fid, ...at, mean: c.fid.fid, lo: null, hi: null });
    if (c.kid?.mean != null) out.push({ metric: METRIC_LABELS.kid, ...at, mean: c.kid.mean, lo: null, hi: null });
    if (c.inceptionScore?.mean != null) out.push({ metric: METRIC_LABELS.is, ...at, mean: c.inceptionScore.mean, lo: null, hi: null });
  }
  return out;
}

async function plots(input: ReportInput): Promise<{ file: string; png: string; title: string; svg: string }[]> {
  // Vega and Vega-Lite (about 270 modules) load when a report is drawn, not with every CLI command.
  const { configsSpec, renderSvg, svgToPng, sweepSpec } = await import('./plots.js');
  const out: { file: string; png: string; title: string; svg: string }[] = [];
  const emit = async (name: string, title: string, spec: Parameters<typeof renderSvg>[0]): Promise<void> => {
    const svg = await renderSvg(spec);
    const file = path.join(input.out, 'plots', `${name}.svg`), png = path.join(input.out, 'plots', `${name}.png`);
    writeFileAtomic(file, svg);
    writeFileAtomic(png, await svgToPng(svg));
    writeJsonAtomic(path.join(input.out, 'plots', `${name}.vl.json`), spec);
    out.push({ file, png, title, svg });
  };
  const scored = input.configs.filter((c) => c.references > 0);
  for (const p of sweptParameters(scored.map((c) => c.config))) {
    const points = plotPoints(input, (c) => {
      const v = c.config.params[p];
      if (c.references === 0) return undefined;
      // Configurations without the parameter (other methods, hand-written configs) are baselines.
      if (v === undefined) return { series: c.config.label, x: null, baseline: true };
      if (typeof v !== 'number') return undefined;
      const others = Object.entries(c.config.params).filter(([k]) => k !== p).map(([k, x]) => `${k}=${String(x)}`);
      return { series: [c.config.method, ...others].join(' '), x: v };
    });
    if (points.length) await emit(`sweep-${p}`, `metrics vs ${p}`, sweepSpec(p, points));
  }
  const all = plotPoints(input, (c) => (c.references > 0 ? { series: c.config.label, x: c.config.label } : undefined));
  if (all.length) await emit('configurations', 'metrics by configuration', configsSpec(all));
  return out;
}

function html(input: ReportInput, figures: { file: string; png: string; title: string; svg: string }[]): string {
  const r = (p: string): string => esc(path.relative(input.out, p).split(path.sep).join('/'));
  const cols = shownColumns(input.configs);
  const fid = input.metrics.includes('fid'), kid = input.metrics.includes('kid'), is = input.metrics.includes('is');
  const s = input.settings;
  const settingsRows: [string, string][] = [
    ['model', input.model], ['dataset', input.data], ['references', `${input.references.length} of ${input.totalReferences} (${input.skipped.length} skipped)`],
    ['images per reference (K)', String(s.numImages)], ['size', `${s.width}x${s.height}`], ['steps / guidance', `${s.steps} / ${s.guidance}`],
    ['seed', `${s.seed} + reference index (torch generator)`], ['task', s.task], ['prompt', `caption + ${JSON.stringify(s.promptSuffix)}`], ['negative prompt', s.negativePrompt],
    ['metrics', input.metrics.length ? input.metrics.map((m) => `${m}: ${input.networks[m === 'kid' || m === 'is' ? 'fid' : m]}`).join('; ') : 'none'],
  ];
  const metricHead = ['configuration', 'method', 'parameters', 'references', 'images', ...cols.map((c) => METRIC_LABELS[c]), ...(fid ? ['FID ↓'] : []), ...(kid ? ['KID ↓'] : []), ...(is ? ['IS ↑'] : []), 's / reference'];
  const metricRows = input.configs.map((c) => `<tr data-config="${esc(c.config.id)}"><th scope="row">${esc(c.config.label)}</th><td>${esc(c.config.method)}</td><td>${esc(paramsText(c))}</td><td>${c.references}</td><td>${c.images}</td>${
    cols.map((k) => `<td data-metric="${k}">${esc(cell(c.metrics[k]))}</td>`).join('')}${fid ? `<td data-metric="fid" title="${esc(c.fid?.note ?? '')}">${c.fid?.fid != null ? fmt(c.fid.fid) : '—'}${c.fid?.note ? ' *' : ''}</td>` : ''}${
    kid ? `<td data-metric="kid" title="${esc(c.kid?.note ?? '')}">${esc(spread(c.kid))}</td>` : ''}${is ? `<td data-metric="is">${esc(spread(c.inceptionScore))}</td>` : ''}<td>${c.secondsPerUnit != null ? c.secondsPerUnit.toFixed(1) : '—'}</td></tr>`).join('\n');
  const fidNotes = input.configs.flatMap((c) => [c.fid?.note, c.kid?.note, c.inceptionScore?.note].filter((n): n is string => Boolean(n)).map((n) => `<li>${esc(c.config.label)}: ${esc(n)}</li>`)).join('');
  const shown = input.references.slice(0, input.reportRows);
  const byConfig = input.configs.map((c) => new Map(c.units.map((u) => [u.reference, u.files])));
  const gallery = shown.map((ref) => `<tr data-reference="${esc(ref.id)}"><th scope="row"><img class="ref" src="${esc(ref.file)}" alt="reference ${esc(ref.id)}" loading="lazy"><div class="cap">${esc(ref.id)}: ${esc(ref.caption)}</div></th>${
    byConfig.map((m, i) => `<td>${(m.get(ref.id) ?? []).map((f) => `<img src="${esc(f)}" alt="${esc(input.configs[i]!.config.label)} ${esc(ref.id)}" loading="lazy">`).join('') || '<span class="missing">not generated</span>'}</td>`).join('')}</tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>visprompt benchmark</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
#metrics td { text-align: right; font-variant-numeric: tabular-nums; }
#gallery img { width: 128px; height: 128px; object-fit: contain; margin: 1px; image-rendering: pixelated; background: #eee; }
#gallery .ref { outline: 2px solid #36c; }
.cap { max-width: 260px; font-weight: normal; font-size: 12px; }
.missing { color: #999; }
figure { margin: 0 0 1.5em; overflow-x: auto; }
</style></head><body>
<h1>visprompt benchmark</h1>
<section id="settings"><h2>Settings</h2><table>${settingsRows.map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table></section>
<section><h2>Metrics</h2>
<p>Mean over all images ± half-width of the 95% Student-t interval over the per-reference means (the ${s.numImages} images of one reference are not independent). Also in <a href="metrics.csv">metrics.csv</a>, <a href="metrics.md">metrics.md</a>, <a href="per-image.csv">per-image.csv</a>.</p>
<table id="metrics"><thead><tr>${metricHead.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>
${metricRows}
</tbody></table>${fidNotes ? `<ul id="fid-notes">${fidNotes}</ul>` : ''}</section>
<section id="skipped"><h2>Skipped files (${input.skipped.length})</h2>${input.skipped.length ? `<ul>${input.skipped.map((x) => `<li><code>${esc(x.file)}</code>: ${esc(x.reason)}</li>`).join('')}</ul>` : '<p>none</p>'}</section>
<section id="plots"><h2>Plots</h2>${figures.map((f) => `<figure>${f.svg.replace(/^<\?xml[^>]*>/, '')}<figcaption>${esc(f.title)}: <a href="${r(f.file)}">SVG</a>, <a href="${r(f.png)}">PNG</a></figcaption></figure>`).join('\n') || '<p>no scores to plot</p>'}</section>
<section><h2>Images</h2><p>${shown.length < input.references.length ? `First ${shown.length} of ${input.references.length} references. ` : ''}Reference (as the model saw it), then each configuration's ${s.numImages} images.</p>
<table id="gallery"><thead><tr><th scope="col">reference</th>${input.configs.map((c) => `<th scope="col">${esc(c.config.label)}</th>`).join('')}</tr></thead><tbody>
${gallery}
</tbody></table></section>
</body></html>
`;
}

export async function writeReport(input: ReportInput): Promise<{ csv: string; markdown: string; html: string; json: string; perImageCsv: string; plots: string[] }> {
  const f = (n: string): string => path.join(input.out, n);
  writeFileAtomic(f('metrics.csv'), csv(input));
  writeFileAtomic(f('per-image.csv'), perImageCsv(input));
  writeFileAtomic(f('metrics.md'), markdown(input));
  const figures = await plots(input);
  writeJsonAtomic(f('results.json'), {
    model: input.model, data: input.data, settings: input.settings, skipped: input.skipped,
    configs: input.configs.map((c) => ({ id: c.config.id, label: c.config.label, method: c.config.method, params: c.config.params, steps: c.settings.steps, guidance: c.settings.guidance, references: c.references, images: c.images, metrics: c.metrics, fid: c.fid ?? null, kid: c.kid ?? null, inception_score: c.inceptionScore ?? null, seconds_per_reference: c.secondsPerUnit })),
  });
  writeFileAtomic(f('report.html'), html(input, figures));
  return { csv: f('metrics.csv'), markdown: f('metrics.md'), html: f('report.html'), json: f('results.json'), perImageCsv: f('per-image.csv'), plots: figures.flatMap((x) => [x.file, x.png]) };
}
