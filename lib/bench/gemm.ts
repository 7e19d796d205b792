/** `gpt-native bench gemm --m M --n N --k K`: times one GEMM shape with the native kernel. */
import { helpText, parseArgs, OptionSpecs } from '../cli/args';
import { native } from '../native';
import { machineLine, randomFill, timeIt } from './timing';

const specs: OptionSpecs = {
  m: { kind: 'int', default: 1024, help: 'rows of C' },
  n: { kind: 'int', default: 768, help: 'columns of C' },
  k: { kind: 'int', default: 768, help: 'inner dimension' },
  'trans-a': { kind: 'boolean', default: false, help: 'A stored (K,M)' },
  'trans-b': { kind: 'boolean', default: false, help: 'B stored (N,K)' },
  runs: { kind: 'int', default: 9, help: 'timed runs (median reported)' },
  threads: { kind: 'int', help: 'threads (default: GPT_NATIVE_THREADS or all cores)' },
  json: { kind: 'boolean', default: false, help: 'print one JSON object as the last line' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
};

export interface GemmResult {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  ms: number;
  gflops: number;
  threads: number;
  isa: string;
}

/** Times C = op(A)·op(B) for one shape; returns the median time and GFLOP/s. */
export function timeGemm(m: number, n: number, k: number, transA = false, transB = false, runs = 9): GemmResult {
  const A = randomFill(new Float32Array(m * k), 1);
  const B = randomFill(new Float32Array(k * n), 2);
  const C = new Float32Array(m * n);
  const lda = transA ? m : k;
  const ldb = transB ? k : n;
  const t = timeIt(() => native.gemm(transA, transB, m, n, k, 1, A, lda, B, ldb, C, n, false, null), {
    warmup: 2,
    runs,
    minTimeMs: 300,
  });
  return {
    m, n, k, transA, transB,
    ms: t.medianMs,
    gflops: (2 * m * n * k) / (t.medianMs * 1e6),
    threads: native.threads(),
    isa: native.gemmIsa(),
  };
}

export function benchGemm(argv: string[]): void {
  const a = parseArgs(argv, specs);
  if (a.help) {
    console.log(helpText('gpt-native bench gemm --m M --n N --k K [--json]', specs));
    return;
  }
  if (a.threads !== undefined) native.setThreads(a.threads as number);
  const r = timeGemm(a.m as number, a.n as number, a.k as number, a['trans-a'] as boolean, a['trans-b'] as boolean,
    a.runs as number);
  if (!a.json) console.log(`# ${machineLine()}, ${r.threads} threads, ${r.isa} kernel`);
  const line = `gemm ${r.transA ? 'Aᵀ' : 'A'}·${r.transB ? 'Bᵀ' : 'B'} M=${r.m} N=${r.n} K=${r.k}: ${r.ms.toFixed(3)} ms, ${r.gflops.toFixed(1)} GFLOP/s`;
  if (a.json) console.log(JSON.stringify(r));
  else console.log(line);
}
