import { jsKernels, naiveKernels } from './kernels.js';
import { loadWasmKernels } from './wasm-kernels.js';
import { initParams } from './params.js';
import { TransformerPass } from './transformer.js';
const c = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 256, sharedClassifier: true, ropeTheta: 10000, normEps: 1e-5 };
const B = 4, T = 256;
for (const k of [loadWasmKernels()]) {
  const pass = new TransformerPass(c, B, T, k);
  const p = initParams(c, 1);
  const g = new Float32Array(p.length);
  const inp = Int32Array.from({ length: B * T }, (_, i) => (i * 7) % 512);
  const tg = Int32Array.from({ length: B * T }, (_, i) => (i * 11) % 512);
  for (let r = 0; r < 8; r++) {
    const t0 = performance.now();
    const loss = pass.run(p, inp, tg, g);
    const s = (performance.now() - t0) / 1000;
    console.log(k.name, loss.toFixed(4), (B * T / s).toFixed(0), 'tok/s');
  }
}
