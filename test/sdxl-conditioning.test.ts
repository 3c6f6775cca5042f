import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { defaultMicroConditioning } from '../src/components/prompt-conditioner.js';
import { CLIPTokenizer } from '../src/io/clip-tokenizer.js';
import { FileFormatError } from '../src/errors.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const M = 'tiny-sdxl';
const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'encode_prompt.json'), 'utf8')) as { prompt: string; prompt_2: string; negative_prompt: string; batch_prompts: string[] };

test('SDXL tokenizers: tokenizer pads with <|endoftext|>, tokenizer_2 with "!" and splits literal "!" out before BPE', () => {
  const gold = JSON.parse(fs.readFileSync(goldenPath(M, 'tokenizers.json'), 'utf8')) as { cases: { text: string; tokenizer: { input_ids: number[] }; tokenizer_2: { input_ids: number[] } }[] };
  const t1 = CLIPTokenizer.fromDir(`${modelDir(M)}/tokenizer`), t2 = CLIPTokenizer.fromDir(`${modelDir(M)}/tokenizer_2`);
  assert.equal(t2.padTokenId, 0);
  for (const c of gold.cases) {
    assert.deepEqual(t1.encode(c.text).input_ids, c.tokenizer.input_ids, `tokenizer: ${c.text}`);
    assert.deepEqual(t2.encode(c.text).input_ids, c.tokenizer_2.input_ids, `tokenizer_2: ${c.text}`);
  }
});

test('SDXL encode_prompt parity: both encoders penultimate + pooled projection; negative None -> zeros, "" encoded; prompt_2; batch; clip_skip', async () => {
  const ck = openCheckpoint(modelDir(M));
  const cond = ck.conditioner();
  const g = golden(M, 'encode_prompt');
  const errs: number[] = [];
  const check = (prefix: string, emb: Awaited<ReturnType<typeof cond.encode>>, negFirst: boolean) => {
    const n = emb.count / (negFirst ? 2 : 1);
    const pos = negFirst ? emb.rows(n, 2 * n) : emb;
    errs.push(close(pos.embeds, g[`${prefix}.prompt_embeds`]!, 2e-5, `${prefix}.prompt_embeds`));
    errs.push(close(pos.pooled!, g[`${prefix}.pooled_prompt_embeds`]!, 2e-5, `${prefix}.pooled`));
    if (negFirst) {
      const neg = emb.rows(0, n);
      errs.push(close(neg.embeds, g[`${prefix}.negative_prompt_embeds`]!, 2e-5, `${prefix}.negative_prompt_embeds`));
      errs.push(close(neg.pooled!, g[`${prefix}.negative_pooled_prompt_embeds`]!, 2e-5, `${prefix}.negative_pooled`));
    }
  };
  check('cfg_negative', await cond.encode([meta.negative_prompt, meta.prompt]), true);
  const none = await cond.encode([null, meta.prompt]);
  assert.ok(none.rows(0).embeds.data.every((v) => v === 0) && none.rows(0).pooled!.data.every((v) => v === 0), 'negative None -> zeros');
  check('cfg_no_negative', none, true);
  check('cfg_empty_string_negative', await cond.encode(['', meta.prompt]), true);
  check('prompt_2', await cond.encode([meta.prompt], { prompts2: [meta.prompt_2] }), false);
  check('batch', await cond.encode([null, null, ...meta.batch_prompts]), true);
  check('clip_skip_1', await cond.encode([meta.prompt], { clipSkip: 1 }), false);
  console.log(`tiny-sdxl encode_prompt: max err ${Math.max(...errs).toExponential(1)}`);
  await assert.rejects(cond.encode([meta.prompt], { clipSkip: 2 }), /--clip-skip must be an integer in \[0, 1\], got 2/);
});

test('SDXL add_time_ids: [orig_h, orig_w, crop_top, crop_left, target_h, target_w] per row', async () => {
  const g = golden(M, 'add_time_ids');
  const emb = await openCheckpoint(modelDir(M)).conditioner().encode(['x']);
  const c0 = emb.conditioning(defaultMicroConditioning(64, 64));
  assert.deepEqual([...c0.addedCond!.timeIds.data], [...g['case0.add_time_ids']!.data]);
  const c1 = emb.conditioning(defaultMicroConditioning(64, 64, { originalSize: [1024, 768], cropTopLeft: [48, 16] }));
  assert.deepEqual([...c1.addedCond!.timeIds.data], [...g['case1.add_time_ids']!.data]);
});

test('a UNet whose added-conditioning size disagrees with the text encoders: one line with expected and actual', () => {
  const ck = openCheckpoint(modelDir(M));
  const unet = ck.unet();
  const addition = unet.config.addition!;
  (unet.config as { addition: unknown }).addition = { ...addition, inputDim: 88 };
  assert.throws(() => ck.conditioner(), (e: Error) => e instanceof FileFormatError && /expects pooled text of 40 values .* but the text encoders give 32/.test(e.message) && !e.message.includes('\n'));
});

test('micro-conditioning flags: WxH -> [h, w], TOP,LEFT -> [top, left]; bad values name the flag', async () => {
  const { sizeFlag, cropFlag, conditioningFrom } = await import('../src/cli/conditioning-flags.js');
  assert.deepEqual(sizeFlag('--original-size')('1024x768'), [768, 1024]);
  assert.deepEqual(cropFlag('48,16'), [48, 16]);
  assert.throws(() => sizeFlag('--target-size')('1024'), /--target-size must be WIDTHxHEIGHT in pixels \(e\.g\. 1024x1024\), got "1024"/);
  assert.throws(() => cropFlag('a,b'), /--crop-top-left must be TOP,LEFT/);
  assert.deepEqual(conditioningFrom({ originalSize: [768, 1024] }).micro, { originalSize: [768, 1024] });
});
