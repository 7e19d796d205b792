/**
 * Token shards in llm.c's format, so shards from that ecosystem load here and ours load there:
 *   header: 256 little-endian int32 — [0] magic 20240520, [1] version 1, [2] token count; the rest 0
 *   body:   token count × uint16 token ids
 * Writing is atomic (temporary file + rename). Reading validates magic, version and size and names the
 * file in every error.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomicSync } from '../io/atomic';

export const SHARD_MAGIC = 20240520;
export const SHARD_VERSION = 1;
const HEADER_BYTES = 256 * 4;

/** Writes one shard atomically. Ids must fit in uint16 (vocabularies up to 65536). */
export function writeShard(file: string, tokens: Uint16Array | ArrayLike<number>): void {
  const n = tokens.length;
  const header = new Int32Array(256);
  header[0] = SHARD_MAGIC;
  header[1] = SHARD_VERSION;
  header[2] = n;
  let body: Uint16Array;
  if (tokens instanceof Uint16Array) body = tokens;
  else {
    body = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t > 65535)
        throw new RangeError(`Expected token ids in [0, 65535] for shard ${file} but received ${t} at index ${i}`);
      body[i] = t;
    }
  }
  writeFileAtomicSync(file, [new Uint8Array(header.buffer), new Uint8Array(body.buffer, body.byteOffset, body.byteLength)]);
}

/** Reads and validates one shard. */
export function readShard(file: string): Uint16Array {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new Error(`${file}: cannot read token shard (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseShard(buf, file);
}

/** Validates and decodes shard bytes; `name` appears in errors. */
export function parseShard(buf: Uint8Array, name: string): Uint16Array {
  if (buf.byteLength < HEADER_BYTES)
    throw new Error(`${name}: corrupt token shard: ${buf.byteLength} bytes is shorter than the 1024-byte header (truncated?)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getInt32(0, true), version = dv.getInt32(4, true), count = dv.getInt32(8, true);
  if (magic !== SHARD_MAGIC) throw new Error(`${name}: not a token shard (magic ${magic}, expected ${SHARD_MAGIC})`);
  if (version !== SHARD_VERSION) throw new Error(`${name}: unsupported token shard version ${version} (expected ${SHARD_VERSION})`);
  if (count < 0 || HEADER_BYTES + 2 * count !== buf.byteLength)
    throw new Error(`${name}: corrupt token shard: header says ${count} tokens (${HEADER_BYTES + 2 * count} bytes) but the file has ${buf.byteLength} bytes`);
  const out = new Uint16Array(count);
  out.set(new Uint16Array(buf.buffer.slice(buf.byteOffset + HEADER_BYTES, buf.byteOffset + buf.byteLength)));
  return out;
}

/** Reads only the token count of a shard (validating the header and size). */
export function shardTokenCount(file: string): number {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    const got = fs.readSync(fd, head, 0, HEADER_BYTES, 0);
    const size = fs.fstatSync(fd).size;
    const dv = new DataView(head.buffer, head.byteOffset, got);
    if (got < HEADER_BYTES) throw new Error(`${file}: corrupt token shard: ${size} bytes is shorter than the 1024-byte header (truncated?)`);
    if (dv.getInt32(0, true) !== SHARD_MAGIC) throw new Error(`${file}: not a token shard (magic ${dv.getInt32(0, true)}, expected ${SHARD_MAGIC})`);
    const count = dv.getInt32(8, true);
    if (HEADER_BYTES + 2 * count !== size)
      throw new Error(`${file}: corrupt token shard: header says ${count} tokens (${HEADER_BYTES + 2 * count} bytes) but the file has ${size} bytes`);
    return count;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Appends tokens and writes shard files of `shardTokens` tokens each: `${prefix}_000000.bin`, … .
 * Call close() to write the last, partial shard. Returns the written paths.
 */
export class ShardWriter {
  private buf: Uint16Array;
  private n = 0;
  private index = 0;
  readonly files: string[] = [];
  totalTokens = 0;

  constructor(private readonly prefix: string, private readonly shardTokens = 100_000_000) {
    if (!Number.isInteger(shardTokens) || shardTokens < 1) throw new RangeError(`Expected a positive integer for shardTokens but received ${shardTokens}`);
    this.buf = new Uint16Array(Math.min(shardTokens, 1 << 20));
    fs.mkdirSync(path.dirname(prefix), { recursive: true });
  }

  /** Adds tokens, flushing full shards. */
  write(tokens: ArrayLike<number>): void {
    for (let i = 0; i < tokens.length; i++) {
      if (this.n === this.buf.length) {
        if (this.n === this.shardTokens) this.flush();
        else {
          const bigger = new Uint16Array(Math.min(this.shardTokens, this.buf.length * 2));
          bigger.set(this.buf);
          this.buf = bigger;
        }
      }
      const t = tokens[i];
      if (t < 0 || t > 65535) throw new RangeError(`Expected token ids in [0, 65535] for ${this.prefix} but received ${t}`);
      this.buf[this.n++] = t;
    }
    this.totalTokens += tokens.length;
  }

  private flush(): void {
    if (this.n === 0) return;
    const file = `${this.prefix}_${String(this.index++).padStart(6, '0')}.bin`;
    writeShard(file, this.buf.subarray(0, this.n));
    this.files.push(file);
    this.n = 0;
  }

  /** Writes the remaining tokens; returns every shard path written. */
  close(): string[] {
    this.flush();
    return this.files;
  }
}
