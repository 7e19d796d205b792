/**
 * gpt-native: GPT-1, GPT-2 and GPT-3 for Node.js over a native core. The public API, and nothing else.
 */
export { native } from './native';
export { Tokenizer } from './tokenizer';
export type { EncodeOptions, StreamDecoder, SpecialToken, TrainInput, TrainOptions, TrainProgress } from './tokenizer';
