/** `node:crypto` in the browser build (see unavailable.ts). */
import { crypto } from './unavailable.js';
export const { createHash, randomUUID } = crypto;
export default crypto;
