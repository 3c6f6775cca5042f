/** `tokenize`, `embed-text`, `embed-image`: the CLIP parts of a checkpoint on their own. */
import type { Command } from 'commander';
import { openModel } from '../model.js';
import { readImageRGB } from '../../io/image.js';
import { int } from '../parse.js';
import { saveTensors } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { ProgressReporter } from '../progress.js';

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
    .description('CLIP text embeddings of a prompt: writes last_hidden_state [1,77,D] and pooler_output [1,D]')
    .requiredOption('--model <path>', 'diffusers folder or single-file checkpoint')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--clip-skip <n>', 'use the hidden state n layers before the last (through the final layer norm, as diffusers\' clip_skip)', int('--clip-skip', 0))
    .requiredOption('--out <file.safetensors>', 'output file')
    .action(async (o: { model: string; prompt: string; clipSkip?: number; out: string }) => {
      const progress = new ProgressReporter(globals().quiet);
      const emb = await openModel(o.model, globals()).textEncoder().encode([o.prompt], { clipSkip: o.clipSkip });
      for (const p of emb.truncated) progress.warn(`prompt longer than 77 tokens was truncated: ${JSON.stringify(p.slice(0, 60))}...`);
      saveTensors(o.out, { last_hidden_state: emb.lastHiddenState, pooler_output: emb.poolerOutput }, { prompt: o.prompt, clip_skip: String(o.clipSkip ?? 0) });
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
