/**
 * Token shards in llm.c's format, the hand-off from the data pipeline to training:
 *
 *   header: 256 × int32 little-endian   header[0] = 20240520 (magic), header[1] = 1 (version),
 *                                       header[2] = number of tokens, the rest 0
 *   body:   that many uint16 little-endian token ids
 *
 * Documents are separated by the end-of-text token placed before each document (as llm.c's data scripts do),
 * so a training loop can read a shard as one flat token stream.
 *
 * Writes are atomic (a temporary file renamed into place), so a reader never sees half a shard; reads check
 * the magic, the version and the size against the count, and name the file in every error.
 */
import * as fs from 'fs';
import * as path from 'path';

export const SHARD_MAGIC = 20240520;
export const SHARD_VERSION = 1;
export const SHARD_HEADER_INTS = 256;
export const SHARD_HEADER_BYTES = SHARD_HEADER_INTS * 4;

function toU16(tokens: Uint16Array | ArrayLike<number>, what: string): Uint16Array {
  if (tokens instanceof Uint16Array) return tokens;
  const out = new Uint16Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > 65535)
      throw new RangeError(`Expected token ids in [0, 65535] for ${what} but received ${t} at index ${i}`);
    out[i] = t;
  }
  return out;
}

function header(count: number): Buffer {
  const h = Buffer.alloc(SHARD_HEADER_BYTES);
  h.writeInt32LE(SHARD_MAGIC, 0);
  h.writeInt32LE(SHARD_VERSION, 4);
  h.writeInt32LE(count, 8);
  return h;
}

function u16Bytes(a: Uint16Array): Buffer {
  // token ids are stored little-endian; every platform Node runs on is little-endian, checked here
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian hosts are not supported');
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes one shard atomically. Example: `writeShard('train_000000.bin', [50256, 464, 2068])`.
 */
export function writeShard(file: string, tokens: Uint16Array | ArrayLike<number>): void {
  const t = toU16(tokens, file);
  if (t.length > 0x7fffffff) throw new RangeError(`Expected at most 2^31-1 tokens for ${file} but received ${t.length}`);
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, header(t.length));
    fs.writeSync(fd, u16Bytes(t));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** A shard's header fields (after validation). Example: `readShardHeader('train_000000.bin').tokens`. */
export function readShardHeader(file: string): { tokens: number; version: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`Cannot open token shard ${file}: ${(e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const h = Buffer.alloc(SHARD_HEADER_BYTES);
    if (size < SHARD_HEADER_BYTES)
      throw new Error(`Token shard ${file} is truncated: ${size} bytes, shorter than the ${SHARD_HEADER_BYTES}-byte header`);
    fs.readSync(fd, h, 0, SHARD_HEADER_BYTES, 0);
    const magic = h.readInt32LE(0);
    const version = h.readInt32LE(4);
    const tokens = h.readInt32LE(8);
    if (magic !== SHARD_MAGIC) throw new Error(`Token shard ${file} has magic ${magic}, expected ${SHARD_MAGIC}: not an llm.c token shard`);
    if (version !== SHARD_VERSION) throw new Error(`Token shard ${file} has version ${version}, expected ${SHARD_VERSION} (uint16 tokens)`);
    if (tokens < 0) throw new Error(`Token shard ${file} has a negative token count ${tokens}`);
    const expected = SHARD_HEADER_BYTES + 2 * tokens;
    if (size < expected)
      throw new Error(`Token shard ${file} is truncated: the header says ${tokens} tokens (${expected} bytes) but the file has ${size} bytes`);
    if (size > expected)
      throw new Error(`Token shard ${file} is corrupt: the header says ${tokens} tokens (${expected} bytes) but the file has ${size} bytes`);
    return { tokens, version };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads and validates a shard. Example: `const tokens = readShard('train_000000.bin')` → Uint16Array. */
export function readShard(file: string): Uint16Array {
  const { tokens } = readShardHeader(file);
  const buf = fs.readFileSync(file);
  const out = new Uint16Array(tokens);
  Buffer.from(out.buffer).set(buf.subarray(SHARD_HEADER_BYTES, SHARD_HEADER_BYTES + 2 * tokens));
  return out;
}

/** Options of {@link ShardWriter}. */
export interface ShardWriterOptions {
  /** tokens per shard before rolling over to the next file (default 100,000,000 as in llm.c's fineweb script) */
  shardTokens?: number;
  /** file name prefix (default 'train'); files are `${prefix}_000000.bin`, `${prefix}_000001.bin`, … */
  prefix?: string;
}

/**
 * Streams tokens into consecutive shards of `shardTokens` each (the last one shorter), each written
 * atomically when full or on `close()`. Memory: one shard's tokens.
 * Example: `const w = new ShardWriter('shards/', { shardTokens: 1e6 }); w.append([50256, ...ids]); const files = w.close()`.
 */
export class ShardWriter {
  readonly dir: string;
  readonly shardTokens: number;
  readonly prefix: string;
  private buf: Uint16Array;
  private fill = 0;
  private total = 0;
  private closed = false;
  /** the shard files written so far */
  readonly files: string[] = [];

  constructor(dir: string, opts: ShardWriterOptions = {}) {
    this.dir = dir;
    this.shardTokens = opts.shardTokens ?? 100_000_000;
    this.prefix = opts.prefix ?? 'train';
    if (!Number.isInteger(this.shardTokens) || this.shardTokens < 1 || this.shardTokens > 0x7fffffff)
      throw new RangeError(`Expected a positive integer below 2^31 for shardTokens but received ${this.shardTokens}`);
    this.buf = new Uint16Array(Math.min(this.shardTokens, 1 << 20));
  }

  /** Tokens appended so far. */
  get tokens(): number {
    return this.total;
  }

  /** Appends tokens, writing out every shard that fills. */
  append(tokens: Uint16Array | ArrayLike<number>): void {
    if (this.closed) throw new Error(`ShardWriter for ${this.dir} is closed`);
    const t = toU16(tokens, `ShardWriter(${this.dir})`);
    let i = 0;
    while (i < t.length) {
      const room = this.shardTokens - this.fill;
      const take = Math.min(room, t.length - i);
      if (this.fill + take > this.buf.length) {
        const b = new Uint16Array(Math.min(this.shardTokens, Math.max(this.buf.length * 2, this.fill + take)));
        b.set(this.buf.subarray(0, this.fill));
        this.buf = b;
      }
      this.buf.set(t.subarray(i, i + take), this.fill);
      this.fill += take;
      this.total += take;
      i += take;
      if (this.fill === this.shardTokens) this.flush();
    }
  }

  private flush(): void {
    const file = path.join(this.dir, `${this.prefix}_${String(this.files.length).padStart(6, '0')}.bin`);
    writeShard(file, this.buf.subarray(0, this.fill));
    this.files.push(file);
    this.fill = 0;
  }

  /** Writes the last, partial shard (if any) and returns every file written. */
  close(): string[] {
    if (!this.closed) {
      if (this.fill > 0) this.flush();
      this.closed = true;
    }
    return this.files;
  }
}
