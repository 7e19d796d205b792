/**
 * Runs a stage's chunks on worker threads (one per core by default) with results delivered in input order
 * and a bounded number of chunks in flight, so memory stays bounded whatever the input size.
 * `workers: 0` runs everything on the calling thread (same results: every decision depends only on the
 * document, the seed, its shard name and line).
 */
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { InputFile, RawChunk, readChunks } from './jsonl';
import { ChunkResult, makeProcessor, TaskSpec } from './tasks';

/** Default worker count: GPT_NATIVE_THREADS, else the number of cores. */
export function defaultWorkers(): number {
  const env = Number(process.env.GPT_NATIVE_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, os.cpus().length);
}

export class ChunkPool {
  private readonly inline: ((c: RawChunk) => ChunkResult) | null = null;
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly waiting: { chunk: RawChunk; id: number }[] = [];
  private readonly pending = new Map<number, { resolve: (r: ChunkResult) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  readonly size: number;

  constructor(spec: TaskSpec, workers = defaultWorkers()) {
    this.size = workers;
    if (workers <= 0) {
      this.inline = makeProcessor(spec);
      return;
    }
    for (let i = 0; i < workers; i++) {
      const w = new Worker(path.join(__dirname, 'worker.js'), { workerData: spec });
      w.on('message', (m: { id: number; result?: ChunkResult; error?: string }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        this.release(w);
        if (!p) return;
        if (m.error !== undefined) p.reject(new Error(`worker failed: ${m.error}`));
        else p.resolve(m.result!);
      });
      w.on('error', (e) => {
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  private release(w: Worker): void {
    const next = this.waiting.shift();
    if (next) this.post(w, next);
    else this.idle.push(w);
  }

  /** Hands a chunk to a worker, moving (not copying) its bytes. */
  private post(w: Worker, m: { id: number; chunk: RawChunk }): void {
    w.postMessage(m, [m.chunk.buf.buffer as ArrayBuffer]);
  }

  /** Processes one chunk. */
  run(chunk: RawChunk): Promise<ChunkResult> {
    if (this.inline) {
      try {
        return Promise.resolve(this.inline(chunk));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const w = this.idle.pop();
      if (w) this.post(w, { id, chunk });
      else this.waiting.push({ chunk, id });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Feeds every chunk of every file through the pool and hands results to `onResult` in input order;
 * `onFile(f, 'start' | 'end')` marks shard boundaries (all of a shard's results come between them).
 */
export async function runChunks(
  files: InputFile[],
  pool: ChunkPool,
  onResult: (r: ChunkResult, c: RawChunk, f: InputFile) => Promise<void> | void,
  opts: { chunkBytes?: number; onFile?: (f: InputFile, at: 'start' | 'end') => Promise<void> | void } = {},
): Promise<void> {
  const inFlight = Math.max(2, pool.size * 2);
  for (const f of files) {
    if (opts.onFile) await opts.onFile(f, 'start');
    const queue: { c: RawChunk; p: Promise<ChunkResult> }[] = [];
    const drainOne = async (): Promise<void> => {
      const { c, p } = queue.shift()!;
      await onResult(await p, c, f);
    };
    try {
      for await (const c of readChunks(f, opts.chunkBytes)) {
        const p = pool.run(c);
        p.catch(() => undefined); // handled when drained
        queue.push({ c, p });
        if (queue.length >= inFlight) await drainOne();
      }
      while (queue.length) await drainOne();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'EISDIR')
        throw new Error(`Cannot read ${f.path}: ${err.message}`);
      if (err.code === 'Z_DATA_ERROR') throw new Error(`${f.path}: not valid gzip (${err.message})`);
      throw e;
    }
    if (opts.onFile) await opts.onFile(f, 'end');
  }
}
