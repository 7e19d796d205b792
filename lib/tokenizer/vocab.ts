/**
 * Byte-level BPE vocabularies: the in-memory form, and the file formats that hold one.
 *
 * - GPT-2's two files: `encoder.json` (token string → id, each byte written as one printable character by
 *   GPT-2's byte↔unicode table) and `vocab.bpe` (one merge "left right" a line, in rank order, after a
 *   `#version` line). Entries of encoder.json that are neither a byte nor the result of a merge are special
 *   tokens (GPT-2's `<|endoftext|>`).
 * - Hugging Face `tokenizer.json` with a byte-level BPE model (`model.vocab`, `model.merges`, `added_tokens`).
 */
import * as fs from 'fs';
import * as path from 'path';

/** A special token: text that encodes to one id when allowed, and that id. */
export interface SpecialToken {
  text: string;
  id: number;
}

/** A byte-level BPE vocabulary. Ids below `tokens.length`; special tokens' bytes are their UTF-8 text. */
export interface Vocab {
  /** bytes of every id (special tokens included; ids that nothing uses have no bytes) */
  tokens: Uint8Array[];
  /** id of each single byte */
  byteToId: Int32Array;
  /** merges in rank order: [left id, right id, merged id] triples */
  merges: Int32Array;
  specials: SpecialToken[];
}

interface ByteTables {
  byteToChar: string[];
  charToByte: Map<string, number>;
  /** char code -> byte, -1 where none (char codes < 512) */
  codeToByte: Int16Array;
}
let byteTables: ByteTables | null = null;

/**
 * GPT-2's byte↔unicode table: printable Latin-1 bytes stand for themselves, the other 68 bytes for
 * U+0100.. in byte order, so that every token is a printable string (a space is written `Ġ`).
 */
export function byteUnicodeTable(): ByteTables {
  if (byteTables) return byteTables;
  const byteToChar: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    byteToChar[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  const charToByte = new Map<string, number>();
  const codeToByte = new Int16Array(512).fill(-1);
  byteToChar.forEach((c, b) => {
    charToByte.set(c, b);
    codeToByte[c.charCodeAt(0)] = b;
  });
  byteTables = { byteToChar, charToByte, codeToByte };
  return byteTables;
}

/** The bytes a GPT-2-style token string stands for, or null when it has a character outside the table. */
export function tokenStringToBytes(s: string): Uint8Array | null {
  const { codeToByte } = byteUnicodeTable();
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const b = c < 512 ? codeToByte[c] : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

/** The GPT-2-style token string of some bytes. */
export function bytesToTokenString(bytes: Uint8Array): string {
  const { byteToChar } = byteUnicodeTable();
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += byteToChar[bytes[i]];
  return s;
}

/** The byte order GPT-2 gives ids 0..255 (its printable bytes first). */
export function gpt2ByteOrder(): number[] {
  const order: number[] = [];
  const { byteToChar } = byteUnicodeTable();
  for (let b = 0; b < 256; b++) if (byteToChar[b].charCodeAt(0) < 256) order.push(b);
  for (let b = 0; b < 256; b++) if (byteToChar[b].charCodeAt(0) >= 256) order.push(b);
  return order;
}

function fail(what: string, name: string, value: unknown): never {
  throw new Error(`Expected ${what} for ${name} but received ${value}`);
}

/**
 * Builds a vocabulary from a token-string → id map and merge pairs (token strings, in rank order).
 * `specialNames`, when given, says which entries are special; otherwise every entry that is neither a byte
 * nor a merge result is.
 */
export function vocabFromStrings(
  encoder: Record<string, number>,
  mergePairs: [string, string][],
  source: string,
  specialNames?: Set<string>,
): Vocab {
  const { byteToChar } = byteUnicodeTable();
  const byteToId = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    const id = encoder[byteToChar[b]];
    if (!Number.isInteger(id)) fail(`an id for byte ${b} (${JSON.stringify(byteToChar[b])})`, source, id);
    byteToId[b] = id;
  }
  let maxId = -1;
  const keys = Object.keys(encoder);
  const ids = keys.map((k) => encoder[k]);
  for (let i = 0; i < keys.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0) fail('non-negative integer ids', source, `${JSON.stringify(keys[i])}: ${id}`);
    if (id > maxId) maxId = id;
  }
  const ordinary = new Uint8Array(maxId + 1); // 1: a byte or a merge result
  for (let b = 0; b < 256; b++) ordinary[byteToId[b]] = 1;
  const merges = new Int32Array(mergePairs.length * 3);
  for (let m = 0; m < mergePairs.length; m++) {
    const [a, b] = mergePairs[m];
    const l = encoder[a], r = encoder[b], t = encoder[a + b];
    if (l === undefined || r === undefined || t === undefined)
      fail(`tokens of the encoder in merge ${m + 1}`, source, JSON.stringify(`${a} ${b}`));
    merges[3 * m] = l;
    merges[3 * m + 1] = r;
    merges[3 * m + 2] = t;
    ordinary[t] = 1;
  }
  const tokens: Uint8Array[] = new Array(maxId + 1).fill(new Uint8Array(0));
  const specials: SpecialToken[] = [];
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i], id = ids[i];
    const special = specialNames ? specialNames.has(k) : !ordinary[id];
    const bytes = special ? null : tokenStringToBytes(k);
    if (special || !bytes) {
      specials.push({ text: k, id });
      tokens[id] = Buffer.from(k, 'utf8');
    } else tokens[id] = bytes;
  }
  specials.sort((a, b) => a.id - b.id);
  return { tokens, byteToId, merges, specials };
}

/** Parses the text of a vocab.bpe file into merge pairs. */
export function parseMerges(text: string, source: string): [string, string][] {
  const out: [string, string][] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '' || (i === 0 && line.startsWith('#version'))) continue;
    const sp = line.indexOf(' ');
    if (sp <= 0 || sp === line.length - 1 || line.indexOf(' ', sp + 1) >= 0)
      fail(`"left right" on line ${i + 1}`, source, JSON.stringify(line));
    out.push([line.slice(0, sp), line.slice(sp + 1)]);
  }
  return out;
}

/** Reads GPT-2's two files. */
export function readVocabFiles(encoderJsonPath: string, vocabBpePath: string): Vocab {
  let encoder: Record<string, number>;
  try {
    encoder = JSON.parse(fs.readFileSync(encoderJsonPath, 'utf8'));
  } catch (e) {
    throw new Error(`Expected a readable encoder.json (token → id) for encoderJsonPath but received ${encoderJsonPath} (${(e as Error).message})`);
  }
  if (typeof encoder !== 'object' || encoder === null || Array.isArray(encoder))
    fail('a JSON object of token → id', 'encoderJsonPath', encoderJsonPath);
  const merges = parseMerges(fs.readFileSync(vocabBpePath, 'utf8'), vocabBpePath);
  return vocabFromStrings(encoder, merges, encoderJsonPath);
}

/** Reads a Hugging Face tokenizer.json holding a byte-level BPE model. */
export function readHuggingFace(tokenizerJsonPath: string): Vocab {
  const j = JSON.parse(fs.readFileSync(tokenizerJsonPath, 'utf8'));
  const model = j?.model;
  if (!model || model.type !== 'BPE' || typeof model.vocab !== 'object')
    fail('a tokenizer.json with a BPE model', 'tokenizerJsonPath', `${tokenizerJsonPath} (model.type ${model?.type})`);
  const byteLevel = (p: unknown): boolean => {
    const o = p as { type?: string; pretokenizers?: unknown[] } | null;
    if (!o) return false;
    if (o.type === 'ByteLevel') return true;
    return o.type === 'Sequence' && Array.isArray(o.pretokenizers) && o.pretokenizers.some(byteLevel);
  };
  if (!byteLevel(j.pre_tokenizer))
    fail('a byte-level pre-tokenizer (ByteLevel)', 'tokenizerJsonPath', `${tokenizerJsonPath} (${JSON.stringify(j.pre_tokenizer?.type)})`);
  const merges: [string, string][] = (model.merges ?? []).map((m: string | [string, string], i: number) => {
    if (Array.isArray(m) && m.length === 2) return [m[0], m[1]];
    if (typeof m === 'string') {
      const sp = m.indexOf(' ');
      if (sp > 0) return [m.slice(0, sp), m.slice(sp + 1)];
    }
    return fail(`a merge "left right" at model.merges[${i}]`, 'tokenizerJsonPath', JSON.stringify(m));
  });
  const encoder: Record<string, number> = { ...model.vocab };
  const special = new Set<string>();
  for (const t of j.added_tokens ?? []) {
    encoder[t.content] = t.id;
    special.add(t.content);
  }
  return vocabFromStrings(encoder, merges, tokenizerJsonPath, special);
}

/** Writes encoder.json and vocab.bpe (special tokens go into encoder.json, as GPT-2's does). */
export function writeVocabFiles(vocab: Vocab, dir: string): { encoderJson: string; vocabBpe: string } {
  fs.mkdirSync(dir, { recursive: true });
  const special = new Map(vocab.specials.map((s) => [s.id, s.text]));
  const encoder: Record<string, number> = {};
  vocab.tokens.forEach((bytes, id) => {
    if (special.has(id)) encoder[special.get(id)!] = id;
    else if (bytes.length > 0) encoder[bytesToTokenString(bytes)] = id;
  });
  const lines = ['#version: 0.2'];
  for (let m = 0; m < vocab.merges.length; m += 3)
    lines.push(bytesToTokenString(vocab.tokens[vocab.merges[m]]) + ' ' + bytesToTokenString(vocab.tokens[vocab.merges[m + 1]]));
  const encoderJson = path.join(dir, 'encoder.json');
  const vocabBpe = path.join(dir, 'vocab.bpe');
  writeAtomic(encoderJson, JSON.stringify(encoder));
  writeAtomic(vocabBpe, lines.join('\n') + '\n');
  return { encoderJson, vocabBpe };
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
