/**
 * Model configuration: one type for config.json files and code, with Hugging Face's key names, and
 * presets for every model size in the GPT-1, GPT-2 and GPT-3 papers.
 */
import { checkNumber, describe, rangeError, typeError } from './errors';

/** Which paper's architecture: GPT-1 (post-norm, no final LN), GPT-2 (pre-norm, final LN), GPT-3 (GPT-2 + banded local layers). */
export type Variant = 'gpt1' | 'gpt2' | 'gpt3';

/** A model's configuration (the keys of config.json). */
export interface GPTConfig {
  variant: Variant;
  n_layer: number;
  n_head: number;
  n_embd: number;
  vocab_size: number;
  n_positions: number;
  layer_norm_epsilon?: number;
  /** GPT-3: size of the local band; position i sees i - window < j <= i in 'local' layers. */
  window_size?: number;
  /** GPT-3: 'global' (dense causal) or 'local' (banded) per layer; default alternates, even layers dense. */
  attention_layers?: Array<'global' | 'local'>;
  /** Dropout on embeddings, residual branches and attention weights (training only). */
  embd_pdrop?: number;
  resid_pdrop?: number;
  attn_pdrop?: number;
  /** Anything else a Hugging Face config carries is kept as is. */
  [key: string]: unknown;
}

/** A config with every optional field filled in. */
export interface ResolvedConfig extends GPTConfig {
  layer_norm_epsilon: number;
  window_size: number;
  attention_layers: Array<'global' | 'local'>;
  embd_pdrop: number;
  resid_pdrop: number;
  attn_pdrop: number;
}

function preset(variant: Variant, n_layer: number, n_embd: number, n_head: number, vocab_size: number,
  n_positions: number): GPTConfig {
  return { variant, n_layer, n_head, n_embd, vocab_size, n_positions, layer_norm_epsilon: 1e-5,
    embd_pdrop: 0.1, resid_pdrop: 0.1, attn_pdrop: 0.1, ...(variant === 'gpt3' ? { window_size: 256 } : {}) };
}

const GPT2_VOCAB = 50257;

/**
 * Presets for every size in the papers. GPT-3's paper lists 13B with d_model 5140 and 40 heads of 128;
 * 40 × 128 = 5120, and 5140 is not divisible by 40, so we use 5120 (the value consistent with its own
 * head count and head size, as later reproductions do). Likewise the table gives 1.3B (XL) 24 heads of 128
 * with d_model 2048; 24 × 128 = 3072 and 2048 is not divisible by 24, so we keep d_model 2048 and the head
 * size 128, which means 16 heads (parameter counts do not depend on the head count). GPT-3's local window is not given in the paper;
 * 256 is our default (configurable via window_size).
 * Example: `presets['gpt2-small'].n_embd === 768`.
 */
export const presets: Readonly<Record<string, GPTConfig>> = Object.freeze({
  gpt1: preset('gpt1', 12, 768, 12, 40478, 512),
  'gpt2-small': preset('gpt2', 12, 768, 12, GPT2_VOCAB, 1024),
  'gpt2-medium': preset('gpt2', 24, 1024, 16, GPT2_VOCAB, 1024),
  'gpt2-large': preset('gpt2', 36, 1280, 20, GPT2_VOCAB, 1024),
  'gpt2-xl': preset('gpt2', 48, 1600, 25, GPT2_VOCAB, 1024),
  'gpt3-small': preset('gpt3', 12, 768, 12, GPT2_VOCAB, 2048),
  'gpt3-medium': preset('gpt3', 24, 1024, 16, GPT2_VOCAB, 2048),
  'gpt3-large': preset('gpt3', 24, 1536, 16, GPT2_VOCAB, 2048),
  'gpt3-xl': preset('gpt3', 24, 2048, 16, GPT2_VOCAB, 2048),
  'gpt3-2.7b': preset('gpt3', 32, 2560, 32, GPT2_VOCAB, 2048),
  'gpt3-6.7b': preset('gpt3', 32, 4096, 32, GPT2_VOCAB, 2048),
  'gpt3-13b': preset('gpt3', 40, 5120, 40, GPT2_VOCAB, 2048),
  'gpt3-175b': preset('gpt3', 96, 12288, 96, GPT2_VOCAB, 2048),
});

/** Returns a copy of a named preset; throws a RangeError listing the names for an unknown one. */
export function getPreset(name: string): GPTConfig {
  const p = presets[name];
  if (!p) throw rangeError(`one of ${Object.keys(presets).join(', ')}`, 'preset', name);
  return { ...p };
}

/**
 * Normalises and validates a config (also Hugging Face gpt2 / openai-gpt config.json files: `model_type`,
 * `n_ctx`). Throws TypeError/RangeError naming the bad key.
 */
export function resolveConfig(input: GPTConfig | Record<string, unknown>): ResolvedConfig {
  if (!input || typeof input !== 'object') throw typeError('a config object or a preset name', 'config', input);
  const c = { ...input } as Record<string, unknown>;
  if (c.variant === undefined) {
    if (c.model_type === 'openai-gpt') c.variant = 'gpt1';
    else if (c.model_type === 'gpt2' || c.model_type === undefined)
      c.variant = c.attention_layers || c.window_size ? 'gpt3' : 'gpt2';
  }
  if (c.variant !== 'gpt1' && c.variant !== 'gpt2' && c.variant !== 'gpt3')
    throw typeError("'gpt1', 'gpt2' or 'gpt3'", 'config.variant', c.variant);
  if (c.n_positions === undefined && c.n_ctx !== undefined) c.n_positions = c.n_ctx;
  for (const k of ['n_layer', 'n_head', 'n_embd', 'vocab_size', 'n_positions'])
    checkNumber(c[k], `config.${k}`, 1, 2 ** 31 - 1, true);
  const C = c.n_embd as number, NH = c.n_head as number, L = c.n_layer as number;
  if (C % NH !== 0) throw rangeError(`n_embd divisible by n_head (${NH})`, 'config.n_embd', C);
  const eps = c.layer_norm_epsilon ?? 1e-5;
  checkNumber(eps, 'config.layer_norm_epsilon', 0, 1);
  for (const k of ['embd_pdrop', 'resid_pdrop', 'attn_pdrop']) {
    if (c[k] === undefined) c[k] = 0.1;
    checkNumber(c[k], `config.${k}`, 0, 0.999);
  }
  let layers: Array<'global' | 'local'>;
  if (c.variant === 'gpt3') {
    const w = c.window_size ?? 256;
    checkNumber(w, 'config.window_size', 1, 2 ** 31 - 1, true);
    c.window_size = w;
    if (c.attention_layers === undefined) layers = Array.from({ length: L }, (_, i) => (i % 2 === 0 ? 'global' : 'local'));
    else {
      const al = c.attention_layers;
      if (!Array.isArray(al) || al.length !== L || !al.every((x) => x === 'global' || x === 'local'))
        throw typeError(`an array of ${L} entries, each 'global' or 'local'`, 'config.attention_layers', al);
      layers = al.slice() as Array<'global' | 'local'>;
    }
  } else {
    if (c.attention_layers !== undefined && !(Array.isArray(c.attention_layers) && c.attention_layers.every((x) => x === 'global')))
      throw typeError(`no local layers for variant ${c.variant} (use 'gpt3')`, 'config.attention_layers', c.attention_layers);
    layers = Array.from({ length: L }, () => 'global');
    c.window_size = c.window_size ?? 0;
  }
  c.attention_layers = layers;
  c.layer_norm_epsilon = eps;
  return c as ResolvedConfig;
}

/** A preset name or a config object, resolved. */
export function configFrom(presetOrConfig: string | GPTConfig): ResolvedConfig {
  if (typeof presetOrConfig === 'string') return resolveConfig(getPreset(presetOrConfig));
  if (presetOrConfig && typeof presetOrConfig === 'object') return resolveConfig(presetOrConfig);
  throw typeError('a preset name or a config object', 'presetOrConfig', presetOrConfig);
}

/** Shapes of every parameter, in our canonical (Hugging Face gpt2) names, in storage order. */
export function parameterShapes(config: GPTConfig): Array<[string, number[]]> {
  const c = typeof config === 'object' && 'attention_layers' in config ? config : resolveConfig(config);
  const C = c.n_embd, V = c.vocab_size, P = c.n_positions;
  const out: Array<[string, number[]]> = [['wte.weight', [V, C]], ['wpe.weight', [P, C]]];
  for (let l = 0; l < c.n_layer; l++) {
    const h = `h.${l}.`;
    out.push(
      [h + 'ln_1.weight', [C]], [h + 'ln_1.bias', [C]],
      [h + 'attn.c_attn.weight', [C, 3 * C]], [h + 'attn.c_attn.bias', [3 * C]],
      [h + 'attn.c_proj.weight', [C, C]], [h + 'attn.c_proj.bias', [C]],
      [h + 'ln_2.weight', [C]], [h + 'ln_2.bias', [C]],
      [h + 'mlp.c_fc.weight', [C, 4 * C]], [h + 'mlp.c_fc.bias', [4 * C]],
      [h + 'mlp.c_proj.weight', [4 * C, C]], [h + 'mlp.c_proj.bias', [C]],
    );
  }
  if (c.variant !== 'gpt1') out.push(['ln_f.weight', [C]], ['ln_f.bias', [C]]);
  return out;
}

/**
 * Number of parameters of a config, without allocating anything (tied output embedding counted once).
 * Example: `countParameters(presets['gpt2-small']) === 124439808`.
 */
export function countParameters(config: GPTConfig | string): number {
  const c = typeof config === 'string' ? getPreset(config) : config;
  const C = c.n_embd, L = c.n_layer;
  let n = c.vocab_size * C + c.n_positions * C + L * (12 * C * C + 13 * C);
  if (c.variant !== 'gpt1') n += 2 * C;
  return n;
}

export { describe };
