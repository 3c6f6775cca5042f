/**
 * The config readers every component and scheduler goes through, on small inline configs: the scheduler
 * config reader (from_config's key filtering, typed reads, the training schedule from betas), the component
 * `Config` accessors and Python's JSON dialect. Errors must name the file, the key, what was expected and
 * what was found, in one line (checked word for word).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { Config } from '../src/io/config.js';
import { parsePythonJson } from '../src/io/python-json.js';
import { SchedulerConfigReader, trainingSchedule, type TrainingDefaults } from '../src/schedulers/scheduler-config.js';
import { alphaBar64, betas64, nearAll, throwsFile } from './scheduler-reference.js';

const R = (raw: Record<string, unknown>): SchedulerConfigReader => new SchedulerConfigReader('a.json', raw);

test('SchedulerConfigReader: _use_default_values are dropped (the key itself too); typed reads with defaults and exact errors', () => {
  assert.deepEqual(R({ a: 1, b: 2, _use_default_values: ['b'] }).raw, { a: 1 });
  assert.deepEqual(R({ a: 1, b: 2, _use_default_values: 'b' }).raw, { a: 1, b: 2 });
  assert.equal(R({}).source, 'a.json');
  // num: missing / null -> default; finite unless allowNonFinite; min
  assert.equal(R({}).num('k', 3), 3);
  assert.equal(R({ k: null }).num('k', 3), 3);
  assert.equal(R({ k: -2.5 }).num('k', 3), -2.5);
  assert.equal(R({ k: Number.NEGATIVE_INFINITY }).num('k', 3, { allowNonFinite: true }), Number.NEGATIVE_INFINITY);
  assert.equal(R({ k: 1 }).num('k', 3, { min: 1 }), 1);
  throwsFile(() => R({ k: 'x' }).num('k', 3), 'a.json', 'k', 'expected a finite number, got "x"');
  throwsFile(() => R({ k: Number.NaN }).num('k', 3), 'a.json', 'k', 'expected a finite number, got NaN');
  throwsFile(() => R({ k: Number.POSITIVE_INFINITY }).num('k', 3), 'a.json', 'k', 'expected a finite number, got Infinity');
  throwsFile(() => R({ k: Number.NaN }).num('k', 3, { allowNonFinite: true }), 'a.json', 'k', 'expected a number, got NaN');
  throwsFile(() => R({ k: true }).num('k', 3, { allowNonFinite: true }), 'a.json', 'k', 'expected a number, got true');
  throwsFile(() => R({ k: 0.5 }).num('k', 3, { min: 1 }), 'a.json', 'k', 'expected a number >= 1, got 0.5');
  // numOrNull
  assert.equal(R({}).numOrNull('k'), null);
  assert.equal(R({ k: null }).numOrNull('k'), null);
  assert.equal(R({ k: 0 }).numOrNull('k'), 0);
  throwsFile(() => R({ k: [1] }).numOrNull('k'), 'a.json', 'k', 'expected a finite number, got [1]');
  // int
  assert.equal(R({}).int('k', 7), 7);
  assert.equal(R({ k: null }).int('k', 7, 1), 7);
  assert.equal(R({ k: 1 }).int('k', 7, 1), 1);
  assert.equal(R({ k: -3 }).int('k', 7), -3);
  throwsFile(() => R({ k: 2.5 }).int('k', 7), 'a.json', 'k', 'expected an integer, got 2.5');
  throwsFile(() => R({ k: 2 ** 53 }).int('k', 7), 'a.json', 'k', 'expected an integer, got 9007199254740992');
  throwsFile(() => R({ k: 0 }).int('k', 7, 1), 'a.json', 'k', 'expected an integer >= 1, got 0');
  throwsFile(() => R({ k: '3' }).int('k', 7, 1), 'a.json', 'k', 'expected an integer >= 1, got "3"');
  // bool
  assert.equal(R({}).bool('k', true), true);
  assert.equal(R({ k: null }).bool('k', false), false);
  assert.equal(R({ k: false }).bool('k', true), false);
  throwsFile(() => R({ k: 'true' }).bool('k', true), 'a.json', 'k', 'expected true or false, got "true"');
  throwsFile(() => R({ k: 0 }).bool('k', true), 'a.json', 'k', 'expected true or false, got 0');
  // oneOf
  assert.equal(R({}).oneOf('k', ['a', 'b'], 'b'), 'b');
  assert.equal(R({ k: null }).oneOf('k', ['a', 'b'], 'b'), 'b');
  assert.equal(R({ k: 'a' }).oneOf('k', ['a', 'b'], 'b'), 'a');
  throwsFile(() => R({ k: 'c' }).oneOf('k', ['a', 'b'], 'b'), 'a.json', 'k', 'expected one of a, b, got "c"');
  throwsFile(() => R({ k: 3 }).oneOf('k', ['a', 'b'], 'b'), 'a.json', 'k', 'expected one of a, b, got 3');
  // unsupported: missing, null and the neutral value pass
  for (const raw of [{}, { k: null }, { k: false }]) assert.doesNotThrow(() => R(raw).unsupported('k', false, 'why'));
  throwsFile(() => R({ k: true }).unsupported('k', false, 'not here'), 'a.json', 'k', 'not here; expected false, got true');
  throwsFile(() => R({ k: 'x' }).unsupported('k', null, 'not here'), 'a.json', 'k', 'not here; expected null, got "x"');
});

test('trainingSchedule: the class defaults, linear / scaled_linear / squaredcos_cap_v2, trained_betas, the three rescale kinds', () => {
  const D: TrainingDefaults = { betaStart: 0.001, betaEnd: 0.1, betaSchedule: 'linear' };
  const lin = trainingSchedule(R({ num_train_timesteps: 10 }), D);
  assert.equal(lin.numTrainTimesteps, 10);
  nearAll(lin.betas, betas64(0.001, 0.1, 10, 'linear'), 1e-6, 'linear betas');
  nearAll(lin.alphasCumprod, alphaBar64(betas64(0.001, 0.1, 10, 'linear')), 2e-6, 'alphas_cumprod');
  assert.equal(trainingSchedule(R({}), D).numTrainTimesteps, 1000);
  // the config's keys win over the class defaults
  nearAll(trainingSchedule(R({ num_train_timesteps: 10, beta_start: 0.01, beta_end: 0.02 }), D).betas, betas64(0.01, 0.02, 10, 'linear'), 1e-6, 'config range');
  nearAll(trainingSchedule(R({ num_train_timesteps: 10, beta_schedule: 'scaled_linear' }), D).betas, betas64(0.001, 0.1, 10, 'scaled_linear'), 1e-6, 'scaled_linear');
  nearAll(trainingSchedule(R({ num_train_timesteps: 10 }), { ...D, betaSchedule: 'scaled_linear' }).betas, betas64(0.001, 0.1, 10, 'scaled_linear'), 1e-6, 'scaled_linear default');
  // Glide's cosine: beta_i = min(1 - abar((i + 1) / T) / abar(i / T), 0.999), abar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2
  const abar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const cos = trainingSchedule(R({ num_train_timesteps: 10, beta_schedule: 'squaredcos_cap_v2' }), D);
  nearAll(cos.betas, Array.from({ length: 10 }, (_, i) => Math.min(1 - abar((i + 1) / 10) / abar(i / 10), 0.999)), 1e-6, 'cosine betas');
  assert.equal(cos.betas[9], Math.fround(0.999));
  // trained_betas bypass the schedule
  const tb = trainingSchedule(R({ num_train_timesteps: 3, trained_betas: [0.1, 0.2, 0.5], beta_schedule: 'scaled_linear' }), D);
  nearAll(tb.alphasCumprod, [0.9, 0.72, 0.36], 1e-6, 'trained');
  assert.deepEqual([...trainingSchedule(R({ num_train_timesteps: 1, trained_betas: [0] }), D).betas], [0]);
  assert.deepEqual(trainingSchedule(R({ num_train_timesteps: 3, trained_betas: null }), D).betas, trainingSchedule(R({ num_train_timesteps: 3 }), D).betas);
  const bad = 'expected null or a list of numbers in [0, 1), got ';
  throwsFile(() => trainingSchedule(R({ num_train_timesteps: 1, trained_betas: [1] }), D), 'a.json', 'trained_betas', `${bad}[1]`);
  throwsFile(() => trainingSchedule(R({ num_train_timesteps: 1, trained_betas: [-0.5] }), D), 'a.json', 'trained_betas', `${bad}[-0.5]`);
  throwsFile(() => trainingSchedule(R({ num_train_timesteps: 1, trained_betas: ['0.5'] }), D), 'a.json', 'trained_betas', `${bad}["0.5"]`);
  throwsFile(() => trainingSchedule(R({ trained_betas: 'x' }), D), 'a.json', 'trained_betas', `${bad}"x"`);
  // the shown value is cut at 40 characters
  throwsFile(() => trainingSchedule(R({ num_train_timesteps: 20, trained_betas: Array<number>(20).fill(2) }), D), 'a.json', 'trained_betas', `${bad}[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2`);
  throwsFile(() => trainingSchedule(R({ num_train_timesteps: 3, trained_betas: [0.1, 0.2] }), D), 'a.json', 'trained_betas', 'expected 3 betas (num_train_timesteps), got 2');
  throwsFile(() => trainingSchedule(R({ num_train_timesteps: 2, trained_betas: [0.5, 2] }), D), 'a.json', 'trained_betas', `${bad}[0.5,2]`); // every value is checked
  throwsFile(() => trainingSchedule(R({ num_train_timesteps: 0 }), D), 'a.json', 'num_train_timesteps', 'expected an integer >= 1, got 0');
  throwsFile(() => trainingSchedule(R({ beta_schedule: 'exp' }), D), 'a.json', 'beta_schedule', 'expected one of linear, scaled_linear, squaredcos_cap_v2, got "exp"');
  throwsFile(() => trainingSchedule(R({ beta_start: 'x' }), D), 'a.json', 'beta_start', 'expected a finite number, got "x"');
  throwsFile(() => trainingSchedule(R({ beta_end: null, beta_start: [] }), D), 'a.json', 'beta_start', 'expected a finite number, got []');
  // rescale_betas_zero_snr: only classes that have it; the k-diffusion style ones then set alphas_cumprod[-1] = 2^-24
  const zs = { num_train_timesteps: 10, rescale_betas_zero_snr: true };
  assert.deepEqual(trainingSchedule(R(zs), D).alphasCumprod, lin.alphasCumprod);
  assert.deepEqual(trainingSchedule(R(zs), { ...D, rescale: 'none' }).alphasCumprod, lin.alphasCumprod);
  const plain = trainingSchedule(R(zs), { ...D, rescale: 'plain' });
  assert.equal(plain.alphasCumprod[9], 0);
  assert.equal(plain.betas[9], 1);
  // Lin et al. (2023) Alg. 1: sqrt(abar) shifted so the last is 0 and scaled so the first is unchanged
  const s = alphaBar64(betas64(0.001, 0.1, 10, 'linear')).map(Math.sqrt);
  const want = s.map((v) => ((v - s[9]!) * s[0]!) / (s[0]! - s[9]!)).map((v) => v * v);
  nearAll(plain.alphasCumprod, want, 1e-5, 'rescaled alphas_cumprod', 1e-3);
  const eps = trainingSchedule(R(zs), { ...D, rescale: 'with-eps' });
  assert.equal(eps.alphasCumprod[9], 2 ** -24);
  assert.deepEqual(eps.alphasCumprod.subarray(0, 9), plain.alphasCumprod.subarray(0, 9));
  assert.deepEqual(trainingSchedule(R({ num_train_timesteps: 10, rescale_betas_zero_snr: false }), { ...D, rescale: 'with-eps' }).alphasCumprod, lin.alphasCumprod);
  throwsFile(() => trainingSchedule(R({ rescale_betas_zero_snr: 'yes' }), { ...D, rescale: 'plain' }), 'a.json', 'rescale_betas_zero_snr', 'expected true or false, got "yes"');
});

test('Config (component config.json): read errors and every typed accessor, with exact messages', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-config-'));
  const write = (name: string, text: string): string => { const p = path.join(dir, name); fs.writeFileSync(p, text); return p; };
  const missing = path.join(dir, 'none.json');
  throwsFile(() => Config.read(missing), missing, undefined, 'config file missing');
  const broken = write('broken.json', '{"a": ');
  assert.throws(() => Config.read(broken), (e: unknown) => e instanceof FileFormatError && e.message.startsWith(`${broken}: not valid JSON (`) && e.message.endsWith(')') && !e.message.includes('\n'));
  for (const [name, text] of [['list.json', '[1]'], ['null.json', 'null'], ['num.json', '5']] as const) {
    const p = write(name, text);
    throwsFile(() => Config.read(p), p, undefined, 'config is not a JSON object');
  }
  const p = write('ok.json', '{"n": 2.5, "i": 3, "b": true, "s": "x", "z": null, "l": ["a", "b"], "li": [1, 2, 3], "neg": -Infinity}');
  const c = Config.read(p);
  assert.equal(c.file, p);
  assert.equal(c.raw.neg, Number.NEGATIVE_INFINITY);
  assert.equal(c.has('n'), true);
  assert.equal(c.has('z'), false);
  assert.equal(c.has('q'), false);
  assert.equal(new Config('f', { zero: 0, no: false }).has('zero'), true);
  assert.equal(new Config('f', { zero: 0, no: false }).has('no'), true);
  assert.equal(c.number('n'), 2.5);
  assert.equal(c.number('q', 4), 4);
  assert.equal(c.number('z', 4), 4);
  throwsFile(() => c.number('q'), p, 'q', 'required config key missing');
  throwsFile(() => c.number('z'), p, 'z', 'required config key missing');
  throwsFile(() => c.number('s'), p, 's', 'expected a number, got "x"');
  assert.equal(c.int('i'), 3);
  throwsFile(() => c.int('n'), p, 'n', 'expected an integer, got 2.5');
  assert.equal(c.bool('b'), true);
  assert.equal(c.bool('q', false), false);
  throwsFile(() => c.bool('s'), p, 's', 'expected true or false, got "x"');
  assert.equal(c.string('s'), 'x');
  assert.equal(c.string('q', 'd'), 'd');
  throwsFile(() => c.string('i'), p, 'i', 'expected a string, got 3');
  assert.equal(c.oneOf('s', ['x', 'y']), 'x');
  assert.equal(c.oneOf('q', ['x', 'y'], 'y'), 'y');
  throwsFile(() => c.oneOf('s', ['a', 'b']), p, 's', 'expected one of a, b, got "x"');
  assert.deepEqual(c.strings('l'), ['a', 'b']);
  assert.deepEqual(c.strings('q', ['d']), ['d']);
  throwsFile(() => c.strings('li'), p, 'li', 'expected a list of strings, got [1,2,3]');
  throwsFile(() => c.strings('s'), p, 's', 'expected a list of strings, got "x"');
  throwsFile(() => new Config('f', { k: ['a', 1] }).strings('k'), 'f', 'k', 'expected a list of strings, got ["a",1]');
  assert.deepEqual(c.stringsOf('l', ['a', 'b', 'c']), ['a', 'b']);
  throwsFile(() => c.stringsOf('l', ['a', 'c']), p, 'l', 'block type b is not supported (expected one of a, c)');
  assert.deepEqual(c.ints('li', 3), [1, 2, 3]);
  assert.deepEqual(c.ints('i', 2), [3, 3]);
  assert.deepEqual(c.ints('q', 2, 5), [5, 5]);
  assert.deepEqual(c.ints('q', 2, [4, 6]), [4, 6]);
  throwsFile(() => c.ints('li', 2), p, 'li', 'expected 2 values (one per block), got 3');
  throwsFile(() => c.ints('n', 2), p, 'n', 'expected an integer or a list of integers, got 2.5');
  throwsFile(() => c.ints('l', 2), p, 'l', 'expected an integer or a list of integers, got ["a","b"]');
  throwsFile(() => new Config('f', { k: [1, 1.5] }).ints('k', 2), 'f', 'k', 'expected an integer or a list of integers, got [1,1.5]');
  assert.equal(c.optionalInts('q', 3), undefined);
  assert.equal(c.optionalInts('z', 3), undefined);
  assert.deepEqual(c.optionalInts('li', 3), [1, 2, 3]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("Python's JSON: NaN / Infinity / -Infinity tokens only outside strings (escapes honoured), plain JSON unchanged", () => {
  assert.deepEqual(parsePythonJson('{"a": [1, -2, 3.5e2], "b": "x"}'), { a: [1, -2, 350], b: 'x' });
  const v = parsePythonJson('[NaN, Infinity, -Infinity, 1]') as number[];
  assert.ok(Number.isNaN(v[0]!));
  assert.deepEqual(v.slice(1), [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1]);
  assert.ok(Number.isNaN(parsePythonJson('NaN') as number));
  assert.equal(parsePythonJson('-Infinity'), Number.NEGATIVE_INFINITY);
  assert.deepEqual(parsePythonJson('{"NaN": "Infinity", "-Infinity": -Infinity}'), { NaN: 'Infinity', '-Infinity': Number.NEGATIVE_INFINITY });
  // an escaped quote does not end the string; an escaped backslash before the closing quote does
  assert.deepEqual((parsePythonJson('["a\\"NaN", NaN, "b\\\\", Infinity, "c"]') as unknown[]).map((x: unknown) => (typeof x === 'number' && Number.isNaN(x) ? 'nan' : x)),
    ['a"NaN', 'nan', 'b\\', Number.POSITIVE_INFINITY, 'c']);
  assert.deepEqual(parsePythonJson('[Infinity,Infinity]'), [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
  assert.deepEqual(parsePythonJson('{"x":-Infinity}'), { x: Number.NEGATIVE_INFINITY });
  // an unterminated string (with or without a token after it) is a SyntaxError, not a hang
  for (const bad of ['[NaNx]', '[Nope]', '[Infinit]', '{"a": -Inf}', '[NaN', '', '["abc', '[NaN, "abc']) assert.throws(() => parsePythonJson(bad), SyntaxError, bad);
});
