/**
 * A bounded fuzzing run (about a minute in all) of the parsers that read untrusted files: safetensors,
 * torch checkpoints, the pickle machine, the CLIP tokenizer and the image reader (see fuzz/targets.ts;
 * `npm run fuzz` runs longer). Any exception that is not a VispromptError, or a slow input, fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allTargets, fuzz } from './fuzz/targets.js';

const BUDGET_MS: Record<string, number> = { safetensors: 9000, 'torch-file': 14000, pickle: 12000, tokenizer: 8000, image: 12000 };

test('fuzzing: no parser throws anything but a VispromptError, and none is slow', { timeout: 180_000 }, async () => {
  const all = await allTargets();
  const lines: string[] = [];
  for (const t of all) {
    const r = await fuzz(t, BUDGET_MS[t.name] ?? 8000);
    lines.push(`${t.name}: ${r.iterations} inputs in ${(r.ms / 1000).toFixed(1)} s, ${r.findings.length} findings`);
    assert.equal(r.findings.length, 0, `${t.name}: ${r.findings.length} findings, first: ${r.findings[0]?.error}\ninput: ${JSON.stringify(typeof r.findings[0]?.input === 'string' ? r.findings[0].input : Buffer.from(r.findings[0]?.input ?? []).toString('base64'))}`);
  }
  console.log(lines.join('\n'));
});
