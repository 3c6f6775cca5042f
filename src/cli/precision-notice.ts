/**
 * What `--precision int8` does not reach, said when a command starts (never a silent float32 run): int8
 * quantizes the UNet, its ControlNets and the VAE encoder; gradients, the text and image encoders, the
 * metric networks and the VAE decoder stay float32.
 */

/** Commands that run no UNet, ControlNet or VAE encoder (`eval` and its subcommands as `eval <name>`). */
const NO_QUANTIZED_PART = ['tokenize', 'embed-text', 'embed-image', 'inspect', 'eval'];

/**
 * The warning (without the `warning: ` prefix) for `--precision int8` on `command` (its path below the
 * program, e.g. `eval clip`), or undefined where int8 applies as asked. `pnoSteps`: fuse's --pno-steps.
 */
export function int8Notice(command: string, o: { pnoSteps?: number } = {}): string | undefined {
  const top = command.split(' ')[0]!;
  if (top === 'train-aligner' || top === 'train-attribute') return `${command} computes gradients, which run in float32: --precision int8 does not apply`;
  if (top === 'serve' || top === 'worker') return `${command}: the precision is chosen per job (the request's "precision": "int8"); --precision is ignored here`;
  if (NO_QUANTIZED_PART.includes(top)) return `${command} runs no UNet or VAE encoder (text and image encoders and metric networks stay float32): --precision int8 does not apply`;
  if (top === 'fuse' && (o.pnoSteps ?? 0) > 0) return 'fuse --pno-steps: Prompt-Noise Optimization computes gradients, which run in float32; the sampling runs in int8';
  return undefined;
}
