/**
 * Training throughput (issue 10): forward+backward tokens/s of the
 * stories260K shape (dim 64, 5 layers, 8 heads, 4 kv heads, hidden 172,
 * vocab 512, 8 windows of 256 tokens; on 2 threads 4 a thread) for each kernel set, as a ratio to the
 * plain single-threaded TypeScript reference (naive triple loops, the
 * trainer's own attention loops) measured in the same run, and as a fraction
 * of fp32 peak. Peak = the flops/s of a WebAssembly SIMD loop of independent
 * multiply-adds (the kernels' own technology), measured here, times the
 * machine's cores.
 */
import os from 'node:os';
import { jsKernels, naiveKernels, type Kernels } from '../converter/train/kernels.js';
import { initParams } from '../converter/train/params.js';
import { DataParallelPass, type GradientPass } from '../converter/train/parallel.js';
import { paramLayout } from '../converter/train/params.js';
import { TransformerPass } from '../converter/train/transformer.js';
import { loadWasmKernels, measureWasmPeakFlops } from '../converter/train/wasm-kernels.js';
import type { ModelConfig } from '../src/model.js';

export const STORIES260K_SHAPE: ModelConfig = {
  dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 256, sharedClassifier: true, ropeTheta: 10000, normEps: 1e-5,
};

/** fp32 flops of one token's forward+backward: 6 per matrix weight, 12·dim·(mean context)·layers for attention. */
export function flopsPerToken(c: ModelConfig, seq: number): number {
  const kv = (c.dim / c.nHeads) * c.nKvHeads;
  const perLayer = 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.dim * c.hiddenDim;
  const matrix = c.nLayers * perLayer + c.vocabSize * c.dim;
  const attention = 12 * c.dim * ((seq + 1) / 2) * c.nLayers;
  return 6 * matrix + attention;
}

/**
 * Median tokens/s of `reps` forward+backward passes (after one warm-up pass);
 * with `cpuTime`, the best tokens per second of this process's CPU time
 * (all its threads) instead, which other jobs on a shared machine disturb
 * far less than the wall clock (they still share caches and cores).
 */
function tokensPerSecond(kernels: Kernels, batch: number, reps: number, threads = 1, cpuTime = false): number {
  const c = STORIES260K_SHAPE;
  const T = c.seqLen;
  const pass: GradientPass =
    threads > 1 ? new DataParallelPass(c, batch, T, kernels, 'wasm', paramLayout(c).total) : new TransformerPass(c, batch, T, kernels);
  const params = initParams(c, 1);
  const grads = new Float32Array(params.length);
  const inputs = Int32Array.from({ length: batch * T }, (_, i) => (i * 7 + 1) % c.vocabSize);
  const targets = Int32Array.from({ length: batch * T }, (_, i) => (i * 11 + 3) % c.vocabSize);
  pass.run(params, inputs, targets, grads);
  const rates: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    pass.run(params, inputs, targets, grads);
    const cpu = process.cpuUsage(c0);
    rates.push((batch * T) / (cpuTime ? (cpu.user + cpu.system) / 1e6 : (performance.now() - t0) / 1000));
  }
  pass.close?.();
  rates.sort((a, b) => a - b);
  return cpuTime ? rates[rates.length - 1] : rates[Math.floor(rates.length / 2)];
}

export function trainFigures(): [string, string, string][] {
  const c = STORIES260K_SHAPE;
  const flops = flopsPerToken(c, c.seqLen);
  const cores = os.availableParallelism();
  const peakOne = measureWasmPeakFlops();
  const peak = peakOne * cores;
  const naive = tokensPerSecond(naiveKernels, 1, 1);
  const rows: [string, string, string][] = [];
  rows.push(['train: fp32 peak (WebAssembly SIMD)', `${(peak / 1e9).toFixed(1)} GFLOP/s`, `measured multiply-add loop ${(peakOne / 1e9).toFixed(1)} GFLOP/s on one thread x ${cores} cores`]);
  rows.push(['train tokens/s (naive TypeScript)', naive.toFixed(0), `the reference: plain triple loops, one thread; stories260K shape, ${(flops / 1e6).toFixed(2)} MFLOP/token forward+backward`]);
  const wasm = loadWasmKernels();
  for (const [k, threads] of [[jsKernels, 1], [wasm, 1], [wasm, 2]] as const) {
    const rate = tokensPerSecond(k, 8, 5, threads);
    rows.push([
      `train tokens/s (${k.name}, ${threads} thread${threads > 1 ? 's' : ''})`,
      rate.toFixed(0),
      `${(rate / naive).toFixed(1)}x the naive reference in this run; ${((100 * rate * flops) / peak).toFixed(1)} % of fp32 peak of ${cores} cores; goal 20,000 tokens/s`,
    ]);
  }
  for (const threads of [1, 2]) {
    const cpuRate = tokensPerSecond(wasm, 8, 7, threads, true);
    rows.push([
      `train tokens per CPU-second (WebAssembly SIMD, ${threads} thread${threads > 1 ? 's' : ''})`,
      cpuRate.toFixed(0),
      `best of 7 passes by this process's CPU time, all its threads (the figure other jobs on the machine disturb least): ${((cpuRate * flops) / 1e9).toFixed(1)} GFLOP per CPU-second`,
    ]);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [name, value, note] of trainFigures()) console.log(`  ${name.padEnd(40)}  ${value.padStart(14)}  ${note}`);
}
