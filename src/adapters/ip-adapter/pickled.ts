/**
 * The official IP-Adapter `.bin` files: `torch.save({'image_proj': {...}, 'ip_adapter': {...}})`, read
 * weights-only and flattened to the safetensors names (`image_proj.<k>`, `ip_adapter.<k>`).
 */
import { FileFormatError } from '../../errors.js';
import type { Tensor } from '../../tensor.js';

export function readPickledTensors(file: string): Map<string, Tensor> {
  throw new FileFormatError(file, 'pickled IP-Adapter files are not readable yet; use the .safetensors release of the adapter');
}
