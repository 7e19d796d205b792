/**
 * gpt-native: GPT-1, GPT-2 and GPT-3 for Node.js over a native core. The public API, and nothing else.
 */
export { native } from './native';
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
