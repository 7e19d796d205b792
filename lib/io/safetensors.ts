/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors format):
 *   8 bytes little-endian u64 N, N bytes of JSON header {name: {dtype, shape, data_offsets:[begin,end]}, __metadata__?},
 *   then the data; offsets are relative to the end of the header.
 * Reading validates everything before trusting it: header length, JSON, dtypes, shapes against byte ranges,
 * ranges inside the file. Each failure is an Error naming the file (and the tensor).
 * F32 is read as is; F16 and BF16 are widened to float32; F64 is narrowed.
 */
import * as fs from 'fs';
import { writeFileAtomic } from './atomic';

export interface TensorData {
  data: Float32Array;
  shape: number[];
}

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Parses a safetensors buffer. `name` is used in error messages (usually the file path). */
export function parseSafetensors(buf: Uint8Array, name: string): { tensors: Map<string, TensorData>; metadata: Record<string, string> } {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${name}: ${msg}`);
  };
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, too short for a safetensors header (truncated?)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > buf.byteLength - 8) fail(`header claims ${n} bytes but the file has only ${buf.byteLength - 8} after the length (truncated or not a safetensors file)`);
  if (n > 100 * 2 ** 20) fail(`header of ${n} bytes is implausibly large (corrupt file?)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'));
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message}); the file is corrupt`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const tensors = new Map<string, TensorData>();
  let metadata: Record<string, string> = {};
  for (const [key, raw] of Object.entries(header)) {
    if (key === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!info || typeof info !== 'object') fail(`tensor ${key}: header entry is not an object`);
    const dtype = info.dtype as string;
    const bytes = DTYPE_BYTES[dtype];
    if (!bytes) fail(`tensor ${key}: unsupported dtype ${JSON.stringify(dtype)} (F32, F16, BF16 or F64 expected)`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor ${key}: invalid shape ${JSON.stringify(shape)}`);
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0) || offs[0] > offs[1])
      fail(`tensor ${key}: invalid data_offsets ${JSON.stringify(offs)}`);
    const [begin, end] = offs as number[];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * bytes)
      fail(`tensor ${key}: shape ${JSON.stringify(shape)} of ${dtype} needs ${count * bytes} bytes but data_offsets span ${end - begin}`);
    if (end > dataLen) fail(`tensor ${key}: data ends at byte ${end} but the file holds only ${dataLen} data bytes (truncated?)`);
    const at = buf.byteOffset + dataStart + begin;
    const out = new Float32Array(count);
    if (dtype === 'F32') {
      if (at % 4 === 0) out.set(new Float32Array(buf.buffer, at, count));
      else out.set(new Float32Array(buf.slice(dataStart + begin, dataStart + end).buffer));
    } else {
      const view = new DataView(buf.buffer, at, end - begin);
      for (let i = 0; i < count; i++) {
        if (dtype === 'F16') out[i] = halfToFloat(view.getUint16(2 * i, true));
        else if (dtype === 'BF16') out[i] = new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0];
        else out[i] = view.getFloat64(8 * i, true);
      }
    }
    tensors.set(key, { data: out, shape: shape as number[] });
  }
  return { tensors, metadata };
}

/** Reads and validates a safetensors file. */
export async function readSafetensors(file: string): Promise<{ tensors: Map<string, TensorData>; metadata: Record<string, string> }> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (err) {
    throw new CheckpointError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseSafetensors(buf, file);
}

/** Serialises tensors (float32) into safetensors chunks, header first, 8-byte aligned data. */
export function serializeSafetensors(tensors: Iterable<[string, { data: Float32Array; shape: number[] }]>,
  metadata: Record<string, string> = { format: 'pt' }): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new RangeError(`safetensors: tensor ${name} has ${t.data.length} values but shape [${t.shape}]`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * count] };
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, 4 * count));
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(Buffer.byteLength(json)), true);
  return [len, Buffer.from(json, 'utf8'), ...parts];
}

/** Writes tensors to a safetensors file atomically. */
export async function writeSafetensors(file: string, tensors: Iterable<[string, { data: Float32Array; shape: number[] }]>,
  metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
