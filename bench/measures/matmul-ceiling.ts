/** matmul_ceiling: one onnxruntime MatMul 4096x4096x4096 fp32 (B a constant, as model weights are): the GFLOP/s ceiling. */
import * as op from '../../src/graph/ops.js';
import { benchGraph, randomTensor, ShapeGraph, type GraphBench, type Measure, type Options } from '../harness.js';

export function matmulBench(opts: Options): GraphBench {
  const n = 4096;
  return {
    measure: 'matmul_ceiling', key: `bench-matmul:${n}`, sources: [], runs: opts.runs ?? 5,
    build: () => {
      const g = new ShapeGraph('matmul');
      const a = g.input('a', [n, n]);
      g.output('c', op.matmul(a, g.weight('b', randomTensor([n, n], 5, 1 / Math.sqrt(n)))));
      return g;
    },
    feeds: { a: randomTensor([n, n], 4) },
  };
}

export const matmulCeiling: Measure = {
  name: 'matmul_ceiling',
  run: (opts) => benchGraph(matmulBench(opts), opts),
};
