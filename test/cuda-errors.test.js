'use strict';
// device: 'cuda' where it cannot work gives an Error that says what to do: no CUDA addon built, or (when
// `npm run check:cuda` built the real addon on a machine without a GPU) no GPU visible; unknown devices and
// bf16 on the CPU are clear errors too. The CPU path stays usable after each of them. Serial: one test
// switches GPT_NATIVE_CUDA_ADDON to the real addon.
const test = require('ava');
const fs = require('fs');
const path = require('path');

const REAL_ADDON = path.join(__dirname, '..', 'build', 'cuda', 'gpt_native_cuda.node');
process.env.GPT_NATIVE_CUDA_ADDON = path.join(__dirname, 'no-such-addon.node');
const { GPT, generate, train } = require('../dist');
const { cudaAvailable } = require('../dist/cuda');
const cfg = { variant: 'gpt2', n_layer: 1, n_head: 2, n_embd: 8, vocab_size: 11, n_positions: 8 };

test.serial('no CUDA addon: GPT.create, GPT.load, generate and train say to run npm run build:cuda', async (t) => {
  const msg = /device 'cuda' needs the CUDA addon, but .*no-such-addon\.node does not exist\. Build it with `npm run build:cuda`/;
  t.throws(() => GPT.create(cfg, { device: 'cuda' }), { message: msg });
  await t.throwsAsync(GPT.load(path.join(__dirname, 'data', 'fixtures', 'gpt2-tiny'), { device: 'cuda' }), { message: msg });
  const m = GPT.create(cfg);
  await t.throwsAsync(generate({ model: m, prompt: [1, 2], maxNewTokens: 2, device: 'cuda', tokenizer: null }), { message: msg });
  t.throws(() => m.to('cuda'), { message: msg });
  t.is(m.device, 'cpu');
  t.is(m.forward([[1, 2, 3]]).length, 33, 'the model still works on the CPU');
  await t.throwsAsync(train({ steps: 1, device: 'cuda', quiet: true, out: path.join(__dirname, 'unused-run') }), { message: msg });
  t.false(fs.existsSync(path.join(__dirname, 'unused-run')), 'nothing was written before the error');
  t.false(cudaAvailable());
});

test.serial('unknown devices and precisions are RangeErrors that list the choices', (t) => {
  t.throws(() => GPT.create(cfg, { device: 'gpu' }), { instanceOf: RangeError, message: "Expected 'cpu' or 'cuda' for device but received \"gpu\"" });
  t.throws(() => GPT.create(cfg, { precision: 'fp16' }), { instanceOf: RangeError, message: "Expected 'fp32' or 'bf16' for precision but received \"fp16\"" });
  t.throws(() => GPT.create(cfg, { precision: 'int8' }), { instanceOf: RangeError, message: /Expected 'fp32' or 'bf16' for precision/ });
});

test.serial('the real CUDA addon (when built here) loads without a GPU and reports that none is visible', (t) => {
  if (!fs.existsSync(REAL_ADDON)) return t.pass('not built here: `npm run check:cuda` builds it where nvcc exists');
  const addon = require(REAL_ADDON);
  const n = addon.deviceCount();
  t.is(typeof n, 'number');
  if (n > 0) return t.pass(`${n} GPU(s) visible: test/cuda*.test.js with GPT_NATIVE_CUDA_TEST=real covers this machine`);
  t.throws(() => addon.init(0), { message: /no CUDA GPU is visible/ });
  process.env.GPT_NATIVE_CUDA_ADDON = REAL_ADDON;
  t.throws(() => GPT.create(cfg, { device: 'cuda' }), { message: /no CUDA GPU is visible .*Use device 'cpu'/ });
});
