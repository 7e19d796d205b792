/**
 * Reading and writing documents. Input is a file, a folder of files (taken in name order, each a shard), or
 * `-` for standard input. A file named *.jsonl, *.ndjson or *.json (optionally .gz) holds one JSON object per
 * line with a string `text` field (other fields are kept); any other file is plain text and is one document.
 * Files are read in chunks of whole lines, so memory is bounded by the chunk size and the longest line.
 *
 * A bad line (invalid JSON, no string `text`) is a {@link DataInputError} naming the file and the line; the
 * stages report it and go on with the next line.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { isAscii } from 'buffer';

export type DocFormat = 'jsonl' | 'text';

/** One input shard. */
export interface InputFile {
  /** path, or '-' for standard input */
  path: string;
  /** the name used in messages and as the shard's key, when not `path` (a spooled stdin) */
  name?: string;
  format: DocFormat;
  gzip: boolean;
  /** bytes on disk (0 for stdin) */
  size: number;
}

/** A document as read: its parsed object, its text, and where it came from. */
export interface Doc {
  doc: Record<string, unknown>;
  text: string;
  file: string;
  line: number;
}

/** An error in the input, with its place. `message` reads `file:line: what is wrong`. */
export class DataInputError extends Error {
  readonly file: string;
  readonly line: number;
  readonly reason: string;
  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'DataInputError';
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

const JSONL_RE = /\.(jsonl|ndjson|json)(\.gz)?$/i;

/** The format a path is read as. Example: `formatOf('a.jsonl.gz')` → 'jsonl'. */
export function formatOf(p: string): DocFormat {
  return p === '-' || JSONL_RE.test(p) ? 'jsonl' : 'text';
}

/**
 * The shards of an input: a file, the files of a folder (recursively, in name order, hidden files skipped),
 * or stdin. Example: `listInputs('crawl/')`.
 */
export function listInputs(input: string, opts: { format?: DocFormat } = {}): InputFile[] {
  if (input === '-') return [{ path: '-', format: opts.format ?? 'jsonl', gzip: false, size: 0 }];
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch {
    throw new Error(`Expected an existing file or folder for --in but received ${JSON.stringify(input)}`);
  }
  const mk = (p: string, size: number): InputFile => ({
    path: p,
    format: opts.format ?? formatOf(p),
    gzip: /\.gz$/i.test(p),
    size,
  });
  if (st.isFile()) return [mk(input, st.size)];
  const out: InputFile[] = [];
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      const p = path.join(dir, name);
      const s = fs.statSync(p);
      if (s.isDirectory()) walk(p);
      else if (s.isFile()) out.push(mk(p, s.size));
    }
  };
  walk(input);
  return out;
}

/**
 * A run of whole lines of one file (or a whole text file), as raw UTF-8 bytes in a buffer of its own, so it can
 * be handed to a worker thread without copying; lines are decoded there, one at a time.
 */
export interface RawChunk {
  file: string;
  format: DocFormat;
  /** 1-based number of the first line in `buf` */
  firstLine: number;
  buf: Uint8Array;
  /** bytes of input this chunk covers (compressed input: after decompression) */
  bytes: number;
}

function openStream(f: InputFile): NodeJS.ReadableStream {
  const raw = f.path === '-' ? process.stdin : fs.createReadStream(f.path, { highWaterMark: 1 << 20 });
  return f.gzip ? raw.pipe(zlib.createGunzip()) : raw;
}

/** Copies into a fresh (never pooled, so transferable) buffer. */
function own(b: Uint8Array): Uint8Array {
  const o = new Uint8Array(b.length);
  o.set(b);
  return o;
}

/**
 * Reads a file as chunks of about `chunkBytes` of whole lines (a plain-text file as one chunk).
 * Example: `for await (const c of readChunks(listInputs('a.jsonl')[0])) …`.
 */
export async function* readChunks(f: InputFile, chunkBytes = 1 << 20): AsyncGenerator<RawChunk> {
  const stream = openStream(f);
  const file = f.name ?? f.path;
  if (f.format === 'text') {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const b of stream as AsyncIterable<Buffer>) {
      parts.push(b);
      n += b.length;
    }
    yield { file, format: 'text', firstLine: 1, buf: own(Buffer.concat(parts, n)), bytes: n };
    return;
  }
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 1;
  const emit = (buf: Buffer): RawChunk => {
    const c: RawChunk = { file, format: 'jsonl', firstLine: line, buf: own(buf), bytes: buf.length };
    for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) line++;
    return c;
  };
  for await (const b of stream as AsyncIterable<Buffer>) {
    pending.push(b);
    pendingBytes += b.length;
    if (pendingBytes < chunkBytes) continue;
    const all = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    const cut = all.lastIndexOf(10);
    if (cut < 0) {
      pending = [all];
      continue; // one very long line: keep reading
    }
    yield emit(all.subarray(0, cut + 1));
    const rest = all.subarray(cut + 1);
    pending = rest.length ? [rest] : [];
    pendingBytes = rest.length;
  }
  if (pendingBytes > 0) yield emit(Buffer.concat(pending, pendingBytes));
}

/** Decodes bytes [start, end) of a buffer as UTF-8 (a pure-ASCII line by the fast one-byte path). */
export function decodeRange(buf: Buffer, start: number, end: number): string {
  return isAscii(buf.subarray(start, end)) ? buf.toString('latin1', start, end) : buf.toString('utf8', start, end);
}

/**
 * Parses one JSONL line into a document; throws a DataInputError for invalid JSON, a non-object, or a
 * missing or non-string `text`. Returns null for a blank line.
 */
export function parseLine(line: string, file: string, lineNo: number): { doc: Record<string, unknown>; text: string } | null {
  if (line.length === 0) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch (e) {
    if (line.trim() === '') return null;
    throw new DataInputError(file, lineNo, `invalid JSON (${(e as Error).message})`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new DataInputError(file, lineNo, `Expected a JSON object but received ${Array.isArray(doc) ? 'an array' : JSON.stringify(doc)}`);
  const text = (doc as Record<string, unknown>).text;
  if (typeof text !== 'string')
    throw new DataInputError(
      file,
      lineNo,
      text === undefined ? 'Expected a string "text" field but it is missing' : `Expected a string "text" field but received ${typeof text}`,
    );
  return { doc: doc as Record<string, unknown>, text };
}

/** A document of a chunk, with the byte range of its line in the chunk (no newline, no trailing CR). */
export interface ChunkDoc {
  doc: Record<string, unknown>;
  text: string;
  line: number;
  start: number;
  end: number;
}

/** The chunk's bytes as a Buffer view (no copy). */
export function chunkBuffer(c: RawChunk): Buffer {
  return Buffer.from(c.buf.buffer, c.buf.byteOffset, c.buf.byteLength);
}

/**
 * Calls `visit(line, start, end)` for each line of a JSONL chunk: its number and byte range (no newline, no
 * trailing CR).
 */
export function forEachLine(c: RawChunk, visit: (line: number, start: number, end: number) => void): void {
  const buf = chunkBuffer(c);
  let start = 0;
  let lineNo = c.firstLine;
  while (start < buf.length) {
    let end = buf.indexOf(10, start);
    const next = end < 0 ? buf.length : end + 1;
    if (end < 0) end = buf.length;
    if (end > start && buf[end - 1] === 13) end--;
    visit(lineNo, start, end);
    start = next;
    lineNo++;
  }
}

/**
 * Visits the documents of a chunk in order; bad lines go to `onError` and are skipped. A plain-text chunk is
 * one document `{"text": …, "source": file}`.
 */
export function forEachDoc(c: RawChunk, visit: (d: ChunkDoc) => void, onError: (e: DataInputError) => void): void {
  const buf = chunkBuffer(c);
  if (c.format === 'text') {
    const text = buf.toString('utf8');
    visit({ doc: { text, source: c.file }, text, line: 1, start: 0, end: buf.length });
    return;
  }
  forEachLine(c, (line, start, end) => {
    if (start === end) return;
    try {
      const d = parseLine(decodeRange(buf, start, end), c.file, line);
      if (d) visit({ doc: d.doc, text: d.text, line, start, end });
    } catch (e) {
      if (e instanceof DataInputError) onError(e);
      else throw e;
    }
  });
}

/** The output form of a document: its own line's bytes for JSONL, a new JSON object for plain text. */
export function docBytes(c: RawChunk, d: ChunkDoc): Uint8Array {
  if (c.format === 'text') return Buffer.from(JSON.stringify(d.doc));
  return c.buf.subarray(d.start, d.end);
}

/**
 * Every document of an input, in order. Bad lines are passed to `onError` (default: thrown).
 * Example: `for await (const d of readDocuments('crawl/', { onError: (e) => console.warn(e.message) })) …`.
 */
export async function* readDocuments(
  input: string | InputFile[],
  opts: { onError?: (e: DataInputError) => void; format?: DocFormat } = {},
): AsyncGenerator<Doc> {
  const files = typeof input === 'string' ? listInputs(input, { format: opts.format }) : input;
  const onError =
    opts.onError ??
    ((e: DataInputError) => {
      throw e;
    });
  for (const f of files) {
    for await (const c of readChunks(f)) {
      const docs: Doc[] = [];
      forEachDoc(c, (d) => docs.push({ doc: d.doc, text: d.text, file: c.file, line: d.line }), onError);
      yield* docs;
    }
  }
}

/** Writes lines to a file atomically (temp file, renamed on `close`), or to stdout for '-'. */
export class LineWriter {
  readonly path: string;
  private readonly tmp: string | null;
  private readonly stream: NodeJS.WritableStream;
  private failed: Error | null = null;

  constructor(p: string) {
    this.path = p;
    if (p === '-') {
      this.tmp = null;
      this.stream = process.stdout;
    } else {
      fs.mkdirSync(path.dirname(path.resolve(p)), { recursive: true });
      this.tmp = `${p}.tmp-${process.pid}`;
      this.stream = fs.createWriteStream(this.tmp, { highWaterMark: 8 << 20 }); // writes overlap the work
    }
    this.stream.on('error', (e: Error) => {
      this.failed = e;
    });
  }

  /** Appends text or bytes (lines with their newlines); resolves when the stream can take more. */
  async write(s: string | Uint8Array): Promise<void> {
    if (this.failed) throw this.failed;
    if (s.length === 0) return;
    if (!this.stream.write(s)) await new Promise<void>((res) => this.stream.once('drain', res));
  }

  /** Flushes and renames the temp file into place. */
  async close(): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.tmp === null) return;
    await new Promise<void>((res, rej) => {
      this.stream.once('error', rej);
      (this.stream as fs.WriteStream).end(() => res());
    });
    fs.renameSync(this.tmp, this.path);
  }

  /** Removes the temp file (after a failure). */
  abort(): void {
    if (this.tmp === null) return;
    try {
      (this.stream as fs.WriteStream).destroy();
      fs.rmSync(this.tmp, { force: true });
    } catch {
      /* nothing to clean */
    }
  }
}

/**
 * Where each input shard's output goes: one file for everything, or (when `out` is a folder, or ends in '/',
 * and the input is a folder) one file per shard with the same relative name (.jsonl for text inputs).
 */
export function outputPlan(input: string, files: InputFile[], out: string): { perShard: boolean; pathFor: (f: InputFile) => string } {
  let inputIsDir = false;
  try {
    inputIsDir = input !== '-' && fs.statSync(input).isDirectory();
  } catch {
    /* listInputs reports it */
  }
  let outIsDir = out.endsWith('/') || out.endsWith(path.sep);
  try {
    outIsDir = outIsDir || fs.statSync(out).isDirectory();
  } catch {
    /* a new path */
  }
  if (outIsDir && !inputIsDir && out !== '-') {
    const base = files.length === 1 && files[0].path !== '-' ? path.basename(files[0].path) : 'stdin.jsonl';
    const name = base.replace(/\.gz$/i, '').replace(/\.(txt|text|md)$/i, '');
    const p = path.join(out, JSONL_RE.test(name) ? name : `${name}.jsonl`);
    return { perShard: false, pathFor: () => p };
  }
  if (!outIsDir || out === '-') return { perShard: false, pathFor: () => out };
  return {
    perShard: true,
    pathFor: (f) => {
      let rel = path.relative(input, f.path).replace(/\.gz$/i, '');
      if (!JSONL_RE.test(rel)) rel = rel.replace(/\.(txt|text|md)$/i, '') + '.jsonl';
      return path.join(out, rel);
    },
  };
}
