/** `inspect FILE`: the tensors of a weights file (safetensors or torch pickle, read weights-only) as JSON. */
import type { Command } from 'commander';
import { inspectTensorFile } from '../../io/tensor-file.js';

export function registerInspectCommand(program: Command): void {
  program.command('inspect')
    .description('list the tensors of a .safetensors file or a torch pickle (.ckpt/.pt/.pth/.bin, read weights-only: nothing in it runs): a JSON array of {name, dtype, shape}; pickle names are the path of keys/indices joined with "/"')
    .argument('<file>', 'weights file')
    .action((file: string) => {
      const entries = inspectTensorFile(file);
      // `visprompt inspect f | head`: a closed pipe ends the listing quietly.
      process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); else throw e; });
      process.stdout.write(`[\n${entries.map((e) => `  ${JSON.stringify({ name: e.name, dtype: e.dtype, shape: e.shape })}`).join(',\n')}\n]\n`);
    });
}
