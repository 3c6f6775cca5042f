/**
 * Real-size original-layout (ldm / CompVis) headers: SD 1.5 / 2.1 UNet, VAE, CLIP ViT-L and OpenCLIP ViT-H tensor
 * SHAPES written as sparse safetensors files (the data section is a hole), for config-inference tests that read
 * only the header (milliseconds). Shapes follow the released checkpoints' module structure.
 */
import fs from 'node:fs';

export type Shapes = Record<string, number[]>;

export function ldmUnet(out: Shapes, ctxDim: number, linear: boolean): void {
  const P = 'model.diffusion_model.';
  const ch = [320, 640, 1280, 1280], attn = [true, true, true, false], L = 2, t = 1280;
  const add = (k: string, s: number[]): void => { out[P + k] = s; };
  const wb = (k: string, w: number[]): void => { add(`${k}.weight`, w); add(`${k}.bias`, [w[0]!]); };
  const res = (p: string, i: number, o: number): void => {
    wb(`${p}.in_layers.0`, [i]); wb(`${p}.in_layers.2`, [o, i, 3, 3]); wb(`${p}.emb_layers.1`, [o, t]);
    wb(`${p}.out_layers.0`, [o]); wb(`${p}.out_layers.3`, [o, o, 3, 3]);
    if (i !== o) wb(`${p}.skip_connection`, [o, i, 1, 1]);
  };
  const st = (p: string, c: number): void => {
    wb(`${p}.norm`, [c]); wb(`${p}.proj_in`, linear ? [c, c] : [c, c, 1, 1]); wb(`${p}.proj_out`, linear ? [c, c] : [c, c, 1, 1]);
    const b = `${p}.transformer_blocks.0`;
    for (const n of ['norm1', 'norm2', 'norm3']) wb(`${b}.${n}`, [c]);
    add(`${b}.attn1.to_q.weight`, [c, c]); add(`${b}.attn1.to_k.weight`, [c, c]); add(`${b}.attn1.to_v.weight`, [c, c]); wb(`${b}.attn1.to_out.0`, [c, c]);
    add(`${b}.attn2.to_q.weight`, [c, c]); add(`${b}.attn2.to_k.weight`, [c, ctxDim]); add(`${b}.attn2.to_v.weight`, [c, ctxDim]); wb(`${b}.attn2.to_out.0`, [c, c]);
    wb(`${b}.ff.net.0.proj`, [8 * c, c]); wb(`${b}.ff.net.2`, [c, 4 * c]);
  };
  wb('time_embed.0', [t, 320]); wb('time_embed.2', [t, t]); wb('input_blocks.0.0', [320, 4, 3, 3]);
  let i = 1, c = 320;
  const skips = [c];
  for (let b = 0; b < 4; b++) {
    for (let j = 0; j < L; j++, i++) { res(`input_blocks.${i}.0`, c, ch[b]!); c = ch[b]!; if (attn[b]) st(`input_blocks.${i}.1`, c); skips.push(c); }
    if (b < 3) { wb(`input_blocks.${i}.0.op`, [c, c, 3, 3]); skips.push(c); i++; }
  }
  res('middle_block.0', c, c); st('middle_block.1', c); res('middle_block.2', c, c);
  i = 0;
  for (let b = 3; b >= 0; b--) {
    for (let j = 0; j <= L; j++, i++) {
      res(`output_blocks.${i}.0`, c + skips.pop()!, ch[b]!); c = ch[b]!;
      if (attn[b]) st(`output_blocks.${i}.1`, c);
      if (j === L && b > 0) wb(`output_blocks.${i}.${attn[b] ? 2 : 1}.conv`, [c, c, 3, 3]);
    }
  }
  wb('out.0', [320]); wb('out.2', [4, 320, 3, 3]);
}

export function ldmVae(out: Shapes): void {
  const P = 'first_stage_model.';
  const ch = [128, 256, 512, 512];
  const wb = (k: string, w: number[]): void => { out[`${P}${k}.weight`] = w; out[`${P}${k}.bias`] = [w[0]!]; };
  const res = (p: string, i: number, o: number): void => {
    wb(`${p}.norm1`, [i]); wb(`${p}.conv1`, [o, i, 3, 3]); wb(`${p}.norm2`, [o]); wb(`${p}.conv2`, [o, o, 3, 3]);
    if (i !== o) wb(`${p}.nin_shortcut`, [o, i, 1, 1]);
  };
  const mid = (p: string): void => {
    res(`${p}.mid.block_1`, 512, 512); res(`${p}.mid.block_2`, 512, 512);
    wb(`${p}.mid.attn_1.norm`, [512]);
    for (const n of ['q', 'k', 'v', 'proj_out']) wb(`${p}.mid.attn_1.${n}`, [512, 512, 1, 1]);
  };
  wb('encoder.conv_in', [128, 3, 3, 3]);
  let c = 128;
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 2; j++) { res(`encoder.down.${i}.block.${j}`, c, ch[i]!); c = ch[i]!; }
    if (i < 3) wb(`encoder.down.${i}.downsample.conv`, [c, c, 3, 3]);
  }
  mid('encoder'); wb('encoder.norm_out', [512]); wb('encoder.conv_out', [8, 512, 3, 3]);
  wb('quant_conv', [8, 8, 1, 1]); wb('post_quant_conv', [4, 4, 1, 1]);
  wb('decoder.conv_in', [512, 4, 3, 3]); mid('decoder');
  for (let i = 3; i >= 0; i--) {
    for (let j = 0; j < 3; j++) { res(`decoder.up.${i}.block.${j}`, c, ch[i]!); c = ch[i]!; }
    if (i > 0) wb(`decoder.up.${i}.upsample.conv`, [c, c, 3, 3]);
  }
  wb('decoder.norm_out', [128]); wb('decoder.conv_out', [3, 128, 3, 3]);
}

export function clipL(out: Shapes): void {
  const P = 'cond_stage_model.transformer.text_model.';
  const wb = (k: string, w: number[]): void => { out[`${P}${k}.weight`] = w; out[`${P}${k}.bias`] = [w[0]!]; };
  out[`${P}embeddings.token_embedding.weight`] = [49408, 768];
  out[`${P}embeddings.position_embedding.weight`] = [77, 768];
  for (let i = 0; i < 12; i++) {
    const l = `encoder.layers.${i}`;
    wb(`${l}.layer_norm1`, [768]); wb(`${l}.layer_norm2`, [768]);
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) wb(`${l}.self_attn.${n}`, [768, 768]);
    wb(`${l}.mlp.fc1`, [3072, 768]); wb(`${l}.mlp.fc2`, [768, 3072]);
  }
  wb('final_layer_norm', [768]);
}

export function openClipH(out: Shapes): void {
  const P = 'cond_stage_model.model.';
  const wb = (k: string, w: number[]): void => { out[`${P}${k}.weight`] = w; out[`${P}${k}.bias`] = [w[0]!]; };
  out[`${P}token_embedding.weight`] = [49408, 1024];
  out[`${P}positional_embedding`] = [77, 1024];
  out[`${P}text_projection`] = [1024, 1024];
  out[`${P}logit_scale`] = [];
  for (let i = 0; i < 24; i++) {
    const b = `transformer.resblocks.${i}`;
    wb(`${b}.ln_1`, [1024]); wb(`${b}.ln_2`, [1024]); wb(`${b}.attn.out_proj`, [1024, 1024]);
    out[`${P}${b}.attn.in_proj_weight`] = [3072, 1024]; out[`${P}${b}.attn.in_proj_bias`] = [3072];
    wb(`${b}.mlp.c_fc`, [4096, 1024]); wb(`${b}.mlp.c_proj`, [1024, 4096]);
  }
  wb('ln_final', [1024]);
}

/** An ldm UNet of any level count / channels / depths (the module structure of ldm's openaimodel.UNetModel). */
export interface UnetSpec { ch: number[]; attn: boolean[]; L: number; ctx: number; linear?: boolean; depth?: number[] }
export function ldmUnetOf(out: Shapes, s: UnetSpec): void {
  const t = 4 * s.ch[0]!, n = s.ch.length;
  const depth = s.depth ?? s.ch.map(() => 1);
  const U = 'model.diffusion_model.';
  const add = (k: string, sh: number[]): void => { out[U + k] = sh; };
  const wb = (k: string, w: number[]): void => { add(`${k}.weight`, w); add(`${k}.bias`, [w[0]!]); };
  const res = (p: string, i: number, o: number): void => {
    wb(`${p}.in_layers.0`, [i]); wb(`${p}.in_layers.2`, [o, i, 3, 3]); wb(`${p}.emb_layers.1`, [o, t]);
    wb(`${p}.out_layers.0`, [o]); wb(`${p}.out_layers.3`, [o, o, 3, 3]);
    if (i !== o) wb(`${p}.skip_connection`, [o, i, 1, 1]);
  };
  const st = (p: string, c: number, d: number): void => {
    const proj = s.linear ? [c, c] : [c, c, 1, 1];
    wb(`${p}.norm`, [c]); wb(`${p}.proj_in`, proj); wb(`${p}.proj_out`, proj);
    for (let k = 0; k < d; k++) {
      const b = `${p}.transformer_blocks.${k}`;
      for (const m of ['norm1', 'norm2', 'norm3']) wb(`${b}.${m}`, [c]);
      add(`${b}.attn1.to_q.weight`, [c, c]); add(`${b}.attn1.to_k.weight`, [c, c]); add(`${b}.attn1.to_v.weight`, [c, c]); wb(`${b}.attn1.to_out.0`, [c, c]);
      add(`${b}.attn2.to_q.weight`, [c, c]); add(`${b}.attn2.to_k.weight`, [c, s.ctx]); add(`${b}.attn2.to_v.weight`, [c, s.ctx]); wb(`${b}.attn2.to_out.0`, [c, c]);
      wb(`${b}.ff.net.0.proj`, [8 * c, c]); wb(`${b}.ff.net.2`, [c, 4 * c]);
    }
  };
  wb('time_embed.0', [t, s.ch[0]!]); wb('time_embed.2', [t, t]); wb('input_blocks.0.0', [s.ch[0]!, 4, 3, 3]);
  let i = 1, c = s.ch[0]!;
  const skips = [c];
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < s.L; j++, i++) { res(`input_blocks.${i}.0`, c, s.ch[b]!); c = s.ch[b]!; if (s.attn[b]) st(`input_blocks.${i}.1`, c, depth[b]!); skips.push(c); }
    if (b < n - 1) { wb(`input_blocks.${i}.0.op`, [c, c, 3, 3]); skips.push(c); i++; }
  }
  res('middle_block.0', c, c); st('middle_block.1', c, depth[n - 1]!); res('middle_block.2', c, c);
  i = 0;
  for (let b = n - 1; b >= 0; b--) {
    for (let j = 0; j <= s.L; j++, i++) {
      res(`output_blocks.${i}.0`, c + skips.pop()!, s.ch[b]!); c = s.ch[b]!;
      if (s.attn[b]) st(`output_blocks.${i}.1`, c, depth[b]!);
      if (j === s.L && b > 0) wb(`output_blocks.${i}.${s.attn[b] ? 2 : 1}.conv`, [c, c, 3, 3]);
    }
  }
  wb('out.0', [s.ch[0]!]); wb('out.2', [4, s.ch[0]!, 3, 3]);
}

/** transformers' CLIPTextModel under `prefix` (SD 1.x: cond_stage_model.transformer.; SDXL: conditioner.embedders.0.transformer.). */
export function clip(out: Shapes, prefix: string, width: number, layers: number): void {
  const P = `${prefix}text_model.`;
  const wb = (k: string, w: number[]): void => { out[`${P}${k}.weight`] = w; out[`${P}${k}.bias`] = [w[0]!]; };
  out[`${P}embeddings.token_embedding.weight`] = [49408, width];
  out[`${P}embeddings.position_embedding.weight`] = [77, width];
  for (let i = 0; i < layers; i++) {
    const l = `encoder.layers.${i}`;
    wb(`${l}.layer_norm1`, [width]); wb(`${l}.layer_norm2`, [width]);
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) wb(`${l}.self_attn.${m}`, [width, width]);
    wb(`${l}.mlp.fc1`, [4 * width, width]); wb(`${l}.mlp.fc2`, [width, 4 * width]);
  }
  wb('final_layer_norm', [width]);
}

/** open_clip's text tower under `prefix` (SD 2.x: cond_stage_model.model.; SDXL: conditioner.embedders.1.model.). */
export function openClip(out: Shapes, prefix: string, width: number, layers: number, projection: number[] = [width, width]): void {
  const wb = (k: string, w: number[]): void => { out[`${prefix}${k}.weight`] = w; out[`${prefix}${k}.bias`] = [w[0]!]; };
  out[`${prefix}token_embedding.weight`] = [49408, width];
  out[`${prefix}positional_embedding`] = [77, width];
  out[`${prefix}text_projection`] = projection;
  out[`${prefix}logit_scale`] = [];
  for (let i = 0; i < layers; i++) {
    const b = `transformer.resblocks.${i}`;
    wb(`${b}.ln_1`, [width]); wb(`${b}.ln_2`, [width]); wb(`${b}.attn.out_proj`, [width, width]);
    out[`${prefix}${b}.attn.in_proj_weight`] = [3 * width, width]; out[`${prefix}${b}.attn.in_proj_bias`] = [3 * width];
    wb(`${b}.mlp.c_fc`, [4 * width, width]); wb(`${b}.mlp.c_proj`, [width, 4 * width]);
  }
  wb('ln_final', [width]);
}

/** A safetensors file with these F16 shapes whose data section is a hole (nothing is written but the header). */
export function writeSparse(file: string, shapes: Shapes, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let off = 0;
  for (const [k, s] of Object.entries(shapes)) {
    const n = s.reduce((a, b) => a * b, 1) * 2;
    header[k] = { dtype: 'F16', shape: s, data_offsets: [off, off + n] };
    off += n;
  }
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, Buffer.concat([len, h]));
    fs.ftruncateSync(fd, 8 + h.length + off);
  } finally {
    fs.closeSync(fd);
  }
}
