/** `sharp` in the browser build (see unavailable.ts): the demo decodes images with createImageBitmap. */
import { sharp } from './unavailable.js';
export default sharp;
