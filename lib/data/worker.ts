/** Worker-thread entry: builds the task's processor from workerData and answers chunks in turn. */
import { parentPort, workerData } from 'worker_threads';
import { makeProcessor, TaskSpec, ChunkResult } from './tasks';
import { RawChunk } from './jsonl';

const process_ = makeProcessor(workerData as TaskSpec);
parentPort!.on('message', (m: { id: number; chunk: RawChunk }) => {
  let result: ChunkResult;
  // the chunk's bytes arrive as a Uint8Array of their own (transferred)
  try {
    result = process_(m.chunk);
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).stack ?? String(e) });
    return;
  }
  const transfer: ArrayBuffer[] = [];
  for (const a of [result.sigs, result.lines, result.hits, result.offsets, result.out]) if (a && a.byteLength) transfer.push(a.buffer as ArrayBuffer);
  parentPort!.postMessage({ id: m.id, result }, transfer);
});
