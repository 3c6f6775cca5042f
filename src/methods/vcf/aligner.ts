/**
 * Visual Concept Fusion's aligner (seed 000): a 2-layer MLP applied per token that maps CLIP image tokens
 * (the vision encoder's last hidden state, before post-layernorm and projection) into the text-embedding
 * space: f(Y) = fc2(ReLU(fc1(LayerNorm(Y)))). Parameters are graph inputs, so the same graph serves
 * training (with gradients) and inference.
 */
import { FileFormatError } from '../../errors.js';
import type { Graph, Value } from '../../graph/ir.js';
import * as op from '../../graph/ops.js';
import type { Tensor } from '../../tensor.js';

export const ALIGNER_PARAMS = ['norm.weight', 'norm.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'] as const;
export type AlignerParamName = (typeof ALIGNER_PARAMS)[number];
export type AlignerParams = Record<AlignerParamName, Tensor>;

export interface AlignerShape {
  /** Image token width (vision hidden size). */
  readonly dv: number;
  readonly hidden: number;
  /** Text embedding width. */
  readonly dt: number;
}

export function alignerParamShapes(s: AlignerShape): Record<AlignerParamName, number[]> {
  return {
    'norm.weight': [s.dv], 'norm.bias': [s.dv],
    'fc1.weight': [s.hidden, s.dv], 'fc1.bias': [s.hidden],
    'fc2.weight': [s.dt, s.hidden], 'fc2.bias': [s.dt],
  };
}

/** Declare the parameters as graph inputs. */
export function alignerInputs(g: Graph, s: AlignerShape): Record<AlignerParamName, Value> {
  const shapes = alignerParamShapes(s);
  return Object.fromEntries(ALIGNER_PARAMS.map((n) => [n, g.input(`aligner.${n}`, shapes[n])])) as Record<AlignerParamName, Value>;
}

/** y = x W^T + b over the last axis (weights [out, in] as torch stores them). */
function linear(x: Value, w: Value, b: Value): Value {
  return op.add(op.matmul(x, op.transpose(w, [1, 0])), b);
}

/** Yh = f(Y), Y [B, N, Dv] -> [B, N, Dt]. */
export function alignerForward(y: Value, p: Record<AlignerParamName, Value>): Value {
  const n = op.layerNormalization(y, p['norm.weight'], p['norm.bias'], 1e-5);
  return linear(op.relu(linear(n, p['fc1.weight'], p['fc1.bias'])), p['fc2.weight'], p['fc2.bias']);
}

/** Shapes of an aligner file's tensors, checked against the model it should fit. */
export function alignerShapeOf(params: Partial<Record<string, Tensor>>, file: string, want?: { dv: number; dt: number }): AlignerShape {
  for (const n of ALIGNER_PARAMS) if (!params[n]) throw new FileFormatError(file, 'not an aligner file: tensor missing', n);
  const fc1 = params['fc1.weight']!.shape, fc2 = params['fc2.weight']!.shape;
  const s = { dv: fc1[1]!, hidden: fc1[0]!, dt: fc2[0]! };
  const shapes = alignerParamShapes(s);
  for (const n of ALIGNER_PARAMS) {
    if (params[n]!.shape.join(',') !== shapes[n].join(',')) throw new FileFormatError(file, `shape [${params[n]!.shape.join(', ')}] does not fit an aligner ${s.dv} -> ${s.hidden} -> ${s.dt} (expected [${shapes[n].join(', ')}])`, n);
  }
  if (want && (want.dv !== s.dv || want.dt !== s.dt)) {
    throw new FileFormatError(file, `aligner maps ${s.dv}-dim image tokens to ${s.dt}-dim text embeddings, but this model has ${want.dv}-dim image tokens and ${want.dt}-dim text embeddings (an aligner for another model?)`, 'fc1.weight');
  }
  return s;
}
