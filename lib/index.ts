/**
 * gpt-native: GPT-1, GPT-2 and GPT-3 for Node.js over a native core. The public API, and nothing else.
 */
export { GPT } from './nn/gpt';
export type { Parameter, CreateOptions } from './nn/gpt';
export type { TokenIds, IdsOptions } from './nn/ids';
export { presets, countParameters, getPreset, resolveConfig } from './config';
export type { GPTConfig, Variant, ResolvedConfig } from './config';
export { AdamW, learningRate, batchSizeAt } from './optim';
export type { AdamWOptions, ScheduleOptions } from './optim';
export { readSafetensors, writeSafetensors, CheckpointError } from './io/safetensors';
export { Rng } from './random';
export { generate } from './generate';
export type { GenerateOptions, GenerateResult, FinishReason, GenerationTokenizer, Prompt } from './generate';
export { KVDecoder } from './nn/decoder';
export { train } from './train';
export type { TrainOptions, TrainResult, StepRecord } from './train';
export { native } from './native';
export { Tokenizer } from './tokenizer';
export type { EncodeOptions, StreamDecoder, SpecialToken, TrainInput, TrainOptions as TokenizerTrainOptions, TrainProgress } from './tokenizer';
