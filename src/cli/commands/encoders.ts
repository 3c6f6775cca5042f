/** `tokenize`, `embed-text`, `embed-image`: the CLIP parts of a checkpoint on their own. */
import type { Command } from 'commander';
import { openModel } from '../model.js';
import { readImageRGB } from '../../io/image.js';
import { int } from '../parse.js';
import { saveTensors } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { ProgressReporter } from '../progress.js';
import { InputError } from '../../errors.js';
import type { Tensor } from '../../tensor.js';

export function registerEncoderCommands(program: Command, globals: () => GlobalOptions): void {
  program.command('tokenize')
    .description('tokenize texts with the model\'s CLIP tokenizer; prints a JSON array of {input_ids, attention_mask} (77 each)')
    .requiredOption('--model <path>', 'diffusers folder or single-file checkpoint')
    .argument('<text...>', 'texts (put them after -- to pass texts that start with a dash)')
    .action((texts: string[], o: { model: string }) => {
      const tok = openModel(o.model, globals()).tokenizer();
      const out = texts.map((t) => {
        const e = tok.encode(t);
        return { input_ids: e.input_ids, attention_mask: e.attention_mask };
      });
      process.stdout.write(`${JSON.stringify(out)}\n`);
    });

  program.command('embed-text')
    .description('CLIP text embeddings of a prompt: writes last_hidden_state [1,77,D] and pooler_output [1,D]; on SDXL also the second encoder\'s (text_encoder_2.last_hidden_state, text_encoder_2.text_embeds) and what the UNet is conditioned on (prompt_embeds [1,77,D1+D2], pooled_prompt_embeds)')
    .requiredOption('--model <path>', 'diffusers folder or single-file checkpoint')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--prompt-2 <text>', 'SDXL: prompt for the second text encoder (default: --prompt)')
    .option('--clip-skip <n>', 'use the hidden state n layers before the last (through the final layer norm, as diffusers\' clip_skip; SDXL\'s prompt_embeds: hidden_states[-(n+2)], as its pipeline)', int('--clip-skip', 0))
    .requiredOption('--out <file.safetensors>', 'output file')
    .action(async (o: { model: string; prompt: string; prompt2?: string; clipSkip?: number; out: string }) => {
      const progress = new ProgressReporter(globals().quiet);
      const ck = openModel(o.model, globals());
      const dual = ck.has('text_encoder_2');
      if (o.prompt2 !== undefined && !dual) throw new InputError('--prompt-2: this model has one text encoder (SDXL has two)');
      const emb = await ck.textEncoder().encode([o.prompt], { clipSkip: o.clipSkip });
      const tensors: Record<string, Tensor> = { last_hidden_state: emb.lastHiddenState, pooler_output: emb.poolerOutput };
      const truncated = new Set(emb.truncated);
      if (dual) {
        // diffusers: prompt_2 or prompt (an empty second prompt falls back too)
        const p2 = o.prompt2 || o.prompt;
        const enc2 = ck.textEncoder2();
        const e2 = await enc2.encode([p2], { clipSkip: o.clipSkip });
        tensors['text_encoder_2.last_hidden_state'] = e2.lastHiddenState;
        tensors['text_encoder_2.text_embeds'] = (await enc2.encodeHidden([p2], 1)).pooled;
        const both = await ck.conditioner().encode([o.prompt], { prompts2: [o.prompt2], clipSkip: o.clipSkip });
        tensors.prompt_embeds = both.embeds;
        tensors.pooled_prompt_embeds = both.pooled!;
        for (const p of [...e2.truncated, ...both.truncated]) truncated.add(p);
      }
      for (const p of truncated) progress.warn(`prompt longer than 77 tokens was truncated: ${JSON.stringify(p.slice(0, 60))}...`);
      saveTensors(o.out, tensors, { prompt: o.prompt, ...(dual ? { prompt_2: o.prompt2 || o.prompt } : {}), clip_skip: String(o.clipSkip ?? 0) });
    });

  program.command('embed-image')
    .description('CLIP image embeddings (the model\'s image_encoder/ and feature_extractor/): writes image_embeds and last_hidden_state')
    .requiredOption('--model <path>', 'diffusers folder with image_encoder/')
    .requiredOption('--image <file>', 'image file (PNG, JPEG, WebP, ...)')
    .requiredOption('--out <file.safetensors>', 'output file')
    .action(async (o: { model: string; image: string; out: string }) => {
      const enc = openModel(o.model, globals()).imageEncoder();
      const r = await enc.encode([await readImageRGB(o.image)]);
      saveTensors(o.out, { image_embeds: r.imageEmbeds, last_hidden_state: r.lastHiddenState, penultimate_hidden_state: r.penultimateHiddenState }, { image: o.image });
    });
}
