// --impl adapter for ../shared/peers/tokenizers/bench.mjs: runs gpt-native's GPT-2 tokenizer beside the npm
// peers. Needs a built package (npm install, or npm run build). Usage, from the repository root:
//   TOK_PEERS_NODE_MODULES=/tmp/tok-peers/node_modules \
//     node ../shared/peers/tokenizers/bench.mjs /tmp/tok-peers/corpus.txt --impl scripts/tokenizer-candidate.mjs
// TOK_CANDIDATE_ARRAY=1 times encode() (a number[]) instead of encodeToUint32() (a Uint32Array, as tiktoken returns).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { Tokenizer } = createRequire(import.meta.url)(root);

export default function load() {
  const tok = Tokenizer.gpt2();
  const version = createRequire(import.meta.url)(path.join(root, 'package.json')).version;
  const asArray = !!process.env.TOK_CANDIDATE_ARRAY;
  return {
    version: `gpt-native ${version}${asArray ? ' (number[])' : ''}`,
    encode: asArray ? (t) => tok.encode(t) : (t) => tok.encodeToUint32(t),
    decode: (ids) => tok.decode(ids),
  };
}
