/**
 * Training checkpoints. A checkpoint folder `DIR/checkpoint/` holds config.json, model.safetensors,
 * optimizer.safetensors (AdamW moments) and state.json (step, schedule, generator and data positions).
 * It is written as a whole into `DIR/checkpoint.tmp/`, then swapped in by renames
 * (checkpoint → checkpoint.old, checkpoint.tmp → checkpoint, then checkpoint.old removed): a process
 * killed at any point leaves a complete checkpoint in `checkpoint/` or `checkpoint.old/`, and resuming
 * takes whichever is complete. `DIR/config.json` and `DIR/model.safetensors` are then replaced atomically
 * (hard links to the new files) so `GPT.load(DIR)` sees the latest weights.
 */
import * as fs from 'fs';
import * as path from 'path';
import { GPT } from '../nn/gpt';
import { AdamW } from '../optim';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';

export interface TrainState {
  step: number;
  tokensSeen: number;
  optimizer: ReturnType<AdamW['state']>;
  dropoutSeed: number;
  dropoutStep: number;
  loader: unknown;
  options: Record<string, unknown>;
  dataDir: string | null;
  trainFiles: string[];
  valFiles: string[];
  version: 1;
}

/** Stages after which a test may make saveCheckpoint fail, to prove an interrupted save loses nothing. */
export type SaveStage = 'tmp-written' | 'old-moved' | 'swapped';

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await fs.promises.open(dir, 'r');
    await fh.sync();
    await fh.close();
  } catch {
    /* not supported everywhere; the renames are still atomic */
  }
}

async function linkAtomic(src: string, dest: string): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}`;
  await fs.promises.rm(tmp, { force: true });
  try {
    await fs.promises.link(src, tmp);
  } catch {
    await fs.promises.copyFile(src, tmp);
  }
  await fs.promises.rename(tmp, dest);
}

/** Writes a checkpoint into `dir` (see the file header for the protocol). */
export async function saveCheckpoint(dir: string, model: GPT, opt: AdamW, state: TrainState,
  failAfter?: SaveStage): Promise<void> {
  const fin = path.join(dir, 'checkpoint');
  const tmp = path.join(dir, 'checkpoint.tmp');
  const old = path.join(dir, 'checkpoint.old');
  await fs.promises.rm(tmp, { recursive: true, force: true });
  await fs.promises.mkdir(tmp, { recursive: true });
  await model.save(tmp);
  await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), [
    ['m', { data: opt.m, shape: [opt.m.length] }],
    ['v', { data: opt.v, shape: [opt.v.length] }],
  ], { format: 'gpt-native-adamw', step: String(state.step) });
  await writeFileAtomic(path.join(tmp, 'state.json'), [JSON.stringify(state, null, 1) + '\n']);
  await fsyncDir(tmp);
  if (failAfter === 'tmp-written') throw new Error('saveCheckpoint: simulated failure after tmp-written');
  if (fs.existsSync(fin)) {
    await fs.promises.rm(old, { recursive: true, force: true });
    await fs.promises.rename(fin, old);
  }
  if (failAfter === 'old-moved') throw new Error('saveCheckpoint: simulated failure after old-moved');
  await fs.promises.rename(tmp, fin);
  await fsyncDir(dir);
  if (failAfter === 'swapped') throw new Error('saveCheckpoint: simulated failure after swapped');
  await fs.promises.rm(old, { recursive: true, force: true });
  await linkAtomic(path.join(fin, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  await linkAtomic(path.join(fin, 'config.json'), path.join(dir, 'config.json'));
}

/** Finds the complete checkpoint in a run folder (or a checkpoint folder itself). */
export function findCheckpoint(dir: string): string {
  const complete = (d: string) => ['state.json', 'model.safetensors', 'optimizer.safetensors', 'config.json'].every((f) => fs.existsSync(path.join(d, f)));
  for (const d of [path.join(dir, 'checkpoint'), path.join(dir, 'checkpoint.old'), dir]) if (complete(d)) return d;
  throw new Error(`No complete checkpoint in ${dir}: expected ${path.join(dir, 'checkpoint')} with state.json, model.safetensors, optimizer.safetensors and config.json`);
}

/** Loads model, optimizer moments and training state from a checkpoint folder. */
export async function loadCheckpoint(dir: string): Promise<{ model: GPT; m: Float32Array; v: Float32Array; state: TrainState; path: string }> {
  const ck = findCheckpoint(dir);
  const model = await GPT.load(ck);
  const st = JSON.parse(await fs.promises.readFile(path.join(ck, 'state.json'), 'utf8')) as TrainState;
  const { tensors } = await readSafetensors(path.join(ck, 'optimizer.safetensors'));
  const m = tensors.get('m'), v = tensors.get('v');
  if (!m || !v || m.data.length !== model.numParameters() || v.data.length !== model.numParameters())
    throw new Error(`${path.join(ck, 'optimizer.safetensors')}: moments missing or of the wrong size for the model`);
  return { model, m: m.data, v: v.data, state: st, path: ck };
}
