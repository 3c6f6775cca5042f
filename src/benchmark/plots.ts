/**
 * The report's plots as Vega-Lite specifications, rendered headless to SVG by Vega (no DOM, no native
 * canvas: Vega's SVG string renderer) and to PNG by sharp (librsvg, already a dependency). Each plot's
 * spec is written beside it (.vl.json), so a researcher can restyle it in the Vega editor.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import sharp from 'sharp';

export interface PlotPoint {
  readonly metric: string;
  readonly series: string;
  readonly x: number | string | null;
  /** A configuration without the swept parameter (a baseline): drawn as a dashed horizontal rule. */
  readonly baseline?: boolean;
  readonly mean: number;
  readonly lo: number | null;
  readonly hi: number | null;
}

/** Metric vs a swept parameter: one panel per metric (own y scale), one line per series, 95% CI bars. */
/** One panel per metric in the table's order, three to a row. */
function panels(points: readonly PlotPoint[]): { facet: object; columns: number } {
  return { facet: { field: 'metric', type: 'nominal', title: null, sort: [...new Set(points.map((p) => p.metric))] }, columns: 3 };
}

export function sweepSpec(parameter: string, points: readonly PlotPoint[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `metrics vs ${parameter} (mean, 95% CI over references)`,
    data: { values: points.map((p) => ({ ...p })) },
    ...panels(points),
    spec: {
      width: 220, height: 160,
      layer: [
        { mark: { type: 'line', point: true }, transform: [{ filter: '!datum.baseline' }], encoding: { x: { field: 'x', type: 'quantitative', title: parameter }, y: { field: 'mean', type: 'quantitative', title: 'mean', scale: { zero: false } }, color: { field: 'series', type: 'nominal', title: 'configuration' } } },
        { mark: { type: 'errorbar', ticks: true }, transform: [{ filter: '!datum.baseline && datum.lo != null' }], encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'lo', type: 'quantitative', title: 'mean' }, y2: { field: 'hi' }, color: { field: 'series', type: 'nominal' } } },
        { mark: { type: 'rule', strokeDash: [4, 3] }, transform: [{ filter: 'datum.baseline' }], encoding: { y: { field: 'mean', type: 'quantitative' }, color: { field: 'series', type: 'nominal' } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  } as TopLevelSpec;
}

/** Every configuration side by side: one panel per metric, bars with 95% CI. */
export function configsSpec(points: readonly PlotPoint[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'metrics by configuration (mean, 95% CI over references)',
    data: { values: points.map((p) => ({ ...p })) },
    ...panels(points),
    spec: {
      width: { step: 22 }, height: 160,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'series', type: 'nominal', title: null, sort: null }, y: { field: 'mean', type: 'quantitative', title: 'mean' }, color: { field: 'series', type: 'nominal', title: 'configuration', sort: null } } },
        { mark: { type: 'errorbar', ticks: true }, transform: [{ filter: 'datum.lo != null' }], encoding: { x: { field: 'series', type: 'nominal', sort: null }, y: { field: 'lo', type: 'quantitative', title: 'mean' }, y2: { field: 'hi' } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  } as TopLevelSpec;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try { return await view.toSVG(); } finally { view.finalize(); }
}

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 144 }).png().toBuffer();
}
