/** `node:os` in the browser build (see unavailable.ts). */
import { os } from './unavailable.js';
export const { cpus, tmpdir, homedir, EOL, platform } = os;
export default os;
