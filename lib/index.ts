/**
 * gpt-native: GPT-1, GPT-2 and GPT-3 for Node.js over a native core. The public API, and nothing else.
 */
export { GPT } from './nn/gpt';
export type { Parameter, CreateOptions, LossOptions } from './nn/gpt';
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
export { QualityClassifier, Featurizer, rocAuc } from './data/quality';
export type { QualityTrainOptions, QualityEval, QualityModelJSON, SparseFeatures } from './data/quality';
export { lomax, keepProbability, paretoKeep } from './data/pareto';
export { MinHasher, LshIndex, estimateJaccard, exactJaccard } from './data/minhash';
export type { MinHashOptions, LshOptions } from './data/minhash';
export { ngramSet, countNgramHits } from './data/ngrams';
export { readDocuments, listInputs, DataInputError } from './data/jsonl';
export type { Doc, InputFile, DocFormat } from './data/jsonl';
export { scoreFiles, filterFiles, dedupFiles, decontaminateFiles, trainQualityFiles, formatSummary } from './data/stages';
export type { StageOptions, StageSummary, FuzzyOptions } from './data/stages';
export { mix, normaliseWeights, formatMixReport } from './data/mix';
export type { MixSource, MixOptions, MixReport } from './data/mix';
export { writeShard, readShard, readShardHeader, ShardWriter, SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_BYTES } from './data/shards';
export { finetune, Classifier, accuracy } from './finetune/classifier';
export type { FinetuneOptions, FinetuneResult } from './finetune/classifier';
export { encodeExample, readTaskFile, TaskDataError, TASKS } from './finetune/tasks';
export type { TaskKind, SpecialIds, Example } from './finetune/tasks';
export { zeroShotClassify, evaluate, perplexity, scoreContinuation } from './eval';
export type { ZeroShotOptions, EvaluateOptions, EvaluateResult, EvalItem } from './eval';
