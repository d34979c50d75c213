/** The second thread of DataParallelPass (parallel.ts): waits for work, runs its half of the windows, signals done. */
import { workerData } from 'node:worker_threads';
import { jsKernels } from './kernels.js';
import { DONE, FAILED, WORK, type WorkerInit } from './parallel.js';
import { TransformerPass, type Distillation } from './transformer.js';
import { loadWasmKernels } from './wasm-kernels.js';

const init = workerData as WorkerInit;
const ctrl = new Int32Array(init.control, 0, 4);
const shared64 = new Float64Array(init.control, 16, 3); // [loss, temperature, alpha]
const params = new Float32Array(init.params);
const grads = new Float32Array(init.grads);
const inputs = new Int32Array(init.inputs);
const targets = new Int32Array(init.targets);
const pass = new TransformerPass(init.config, init.batch, init.seq, init.kernels === 'wasm' ? loadWasmKernels() : jsKernels, { microBatch: init.microBatch });
const rows = init.batch * init.seq;
const distill: Distillation | null = init.teacher && {
  teacherProbs: new Float32Array(init.teacher.buffer, init.teacher.byteOffset, rows * init.config.vocabSize),
  temperature: 1,
  alpha: 0,
};

for (;;) {
  Atomics.wait(ctrl, 0, 0);
  if (Atomics.load(ctrl, 0) !== WORK) continue;
  try {
    if (distill && ctrl[2]) {
      distill.temperature = shared64[1];
      distill.alpha = shared64[2];
    }
    pass.setDistillation(ctrl[2] ? distill : null);
    shared64[0] = pass.run(params, inputs, targets, ctrl[1] ? grads : null);
    Atomics.store(ctrl, 0, DONE);
  } catch {
    Atomics.store(ctrl, 0, FAILED);
  }
  Atomics.notify(ctrl, 0);
}
