/**
 * One definition of each parameter: every field of the server's request schemas is a flag of the CLI
 * command of the same kind, with the same name (commander's camelCase attribute) and the same default.
 * CLI flags the schemas lack are listed (files the server handles itself are expected to be absent).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Command, type Option } from 'commander';
import { registerGenerateCommands } from '../src/cli/commands/generate.js';
import { registerVaryCommand } from '../src/cli/commands/vary.js';
import { registerHSpaceCommands } from '../src/cli/commands/hspace.js';
import { registerFuseCommand } from '../src/cli/commands/fuse.js';
import type { GlobalOptions } from '../src/cli/main.js';
import { JOB_SCHEMAS, type JobKind } from '../src/server/schemas.js';

/** Where the server differs from the CLI on purpose. */
const SERVER_ONLY: Record<string, string> = {
  saveLatents: 'a file path in the CLI; a yes/no here (results go to the job folder)',
  lora: 'added to every sampling command in main.ts',
  precision: 'added to every command in main.ts',
};
/** CLI flags that name output files or local inputs the server replaces with its own. */
const CLI_ONLY = new Set(['out', 'latents', 'saveChain', 'saveLatents', 'quiet']);

test('request schemas match the CLI flags: names and defaults', () => {
  const program = new Command();
  const globals = (): GlobalOptions => ({ quiet: true, device: 'cpu' });
  registerGenerateCommands(program, globals);
  registerVaryCommand(program, globals);
  registerHSpaceCommands(program, globals);
  registerFuseCommand(program, globals);
  const missing: string[] = [];
  for (const kind of Object.keys(JOB_SCHEMAS) as JobKind[]) {
    const cmd = program.commands.find((c) => c.name() === kind);
    assert.ok(cmd, `the CLI has a ${kind} command`);
    const options = new Map<string, Option>(cmd.options.map((o) => [o.attributeName(), o]));
    const props = JOB_SCHEMAS[kind].properties as Record<string, { default?: unknown }>;
    for (const [name, schema] of Object.entries(props)) {
      if (SERVER_ONLY[name]) continue;
      const opt = options.get(name);
      assert.ok(opt, `${kind}: the schema's ${name} is a CLI flag`);
      const cliDefault = opt.negate && opt.defaultValue === undefined ? true : opt.defaultValue; // --no-x defaults x to true
      assert.deepEqual(schema.default, cliDefault, `${kind} ${name}: schema default ${JSON.stringify(schema.default)}, CLI default ${JSON.stringify(cliDefault)}`);
    }
    for (const name of options.keys()) if (!(name in props) && !CLI_ONLY.has(name)) missing.push(`${kind} --${options.get(name)!.long?.slice(2)}`);
  }
  assert.deepEqual(missing, [], 'every CLI flag of a job command is a server field (or a CLI-only output path)');
});

test('one definition: each job option spec is keyed by its flag\'s attribute name, and the server text is the CLI help in field names', async () => {
  const specs = await import('../src/params/job-options.js');
  const { attributeName, serverText } = await import('../src/params/option-spec.js');
  const sets = { GENERATE_OPTIONS: specs.GENERATE_OPTIONS, INVERT_OPTIONS: specs.INVERT_OPTIONS, VARY_OPTIONS: specs.VARY_OPTIONS, INJECT_OPTIONS: specs.INJECT_OPTIONS, EDIT_OPTIONS: specs.EDIT_OPTIONS, FUSE_OPTIONS: specs.FUSE_OPTIONS };
  for (const [set, options] of Object.entries(sets)) {
    for (const [key, spec] of Object.entries(options as Record<string, { flags: string; cliOnly?: boolean }>)) {
      if (!spec.cliOnly) assert.equal(attributeName(spec.flags), key, `${set}.${key}: ${spec.flags}`);
    }
  }
  assert.equal(serverText('default: --negative-prompt, see --lambda-p and --prompt-2'), 'default: negativePrompt, see lambdaP and prompt2');
  // the schema's description is the CLI's help text (the web UI shows it as the tooltip)
  const lambdaP = JOB_SCHEMAS.vary.properties.lambdaP as { description?: string; default?: unknown; minimum?: number };
  assert.equal(lambdaP.description, specs.VARY_OPTIONS.lambdaP.help);
  assert.equal(lambdaP.minimum, 0);
  const image = JOB_SCHEMAS.vary.properties.image as { description?: string };
  assert.match(image.description ?? '', /^an image \(an upload id/, 'the web form makes a drop zone of fields described as "an image"');
  const tEarly = JOB_SCHEMAS.vary.properties.tEarly as { description?: string } | undefined;
  assert.ok(tEarly, 'vary takes tEarly');
});

test('every image field of a job schema is resolved as an upload (IMAGE_FIELDS), e.g. fuse\'s ipImage', async () => {
  const { IMAGE_FIELDS } = await import('../src/server/schemas.js');
  for (const kind of Object.keys(JOB_SCHEMAS) as JobKind[]) {
    const props = JOB_SCHEMAS[kind].properties as Record<string, { description?: string }>;
    const images = Object.keys(props).filter((k) => /^(an image \(an upload id|images \(upload ids) /.test(props[k]!.description ?? ''));
    assert.deepEqual([...images].sort(), [...IMAGE_FIELDS[kind]].sort(), `${kind}: image fields`);
  }
});

test('A1111 sampler names map to the schedulers of the same algorithm', async () => {
  const { a1111Scheduler } = await import('../src/server/app.js');
  const want: Record<string, string> = {
    DDIM: 'ddim', Euler: 'euler', 'Euler a': 'euler-a', 'DPM++ 2M': 'dpm++2m', 'DPM++ 2M Karras': 'dpm++2m-karras',
    'DPM++ 2M SDE': 'dpm++2m-sde', PLMS: 'pndm', LMS: 'lms', Heun: 'heun', UniPC: 'unipc', LCM: 'lcm', 'euler-a': 'euler-a',
  };
  for (const [a1111, ours] of Object.entries(want)) assert.equal(a1111Scheduler(a1111), ours, a1111);
  assert.throws(() => a1111Scheduler('Heun++'), /sampler_name: "Heun\+\+" is not available/);
});
