/** `node:zlib` in the browser build (see unavailable.ts). */
import { inflateSync } from './unavailable.js';
export { inflateSync };
export default { inflateSync };
