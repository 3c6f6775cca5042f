/**
 * The queue on Redis (BullMQ) with `visprompt worker` processes: bounded load and faults on loopback —
 * a worker killed mid-job has its job retried by the other, the server restarted once: no job lost,
 * none duplicated, every result on disk. Debian's redis-server is started here on a free loopback port;
 * the test is skipped (saying so) only when that binary is absent. The full 200-job run is
 * `npm run bench:server`; here VP_LOAD_JOBS (default 12) bounds it.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { runLoad, redisAvailable, REDIS_SERVER } from '../bench/server-load.js';
import { modelsFolder } from './server-helpers.js';

const skip = redisAvailable() ? false : `${REDIS_SERVER} is not installed (apt-get install -y redis-server): the BullMQ queue is untested`;

test('BullMQ: jobs across 2 workers, one killed mid-job, server restarted: 0 lost, 0 duplicated, all results on disk', { skip, timeout: 300_000 }, async () => {
  const jobs = Number(process.env.VP_LOAD_JOBS ?? 12);
  const r = await runLoad({ jobs, workers: 2, steps: 6, models: modelsFolder(), lockMs: 2000 });
  console.log(`redis load: ${JSON.stringify(r)}`);
  assert.equal(r.lost, 0, 'no job lost');
  assert.equal(r.duplicated, 0, 'no duplicated results');
  assert.equal(r.missingFiles, 0, 'every result on disk');
  assert.ok(r.killedJob, 'a worker was killed while running a job');
  assert.ok(r.retried >= 1, 'the killed worker\'s job ran again');
});
