/**
 * `npm run bench`: speed and memory of the decoder on stories260K int8.
 * Deterministic counts first (instructions per token from callgrind and from
 * QEMU's instruction counter, bytes of flash and RAM), then wall-clock speed
 * as a ratio against the TypeScript float reference measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertCheckpoint } from '../converter/convert.js';
import { readBlob } from '../src/blob.js';
import { readLlama2cCheckpoint } from '../src/llama2c.js';
import { ramPlan } from '../src/memory-plan.js';
import { ReferenceModel, argmax } from '../src/reference.js';
import { nativeRunnerPath, projectRoot } from '../host/native.js';
import { esp32s3Figures } from './esp32s3.js';
import { evalMemoryFigures } from './eval-memory.js';
import { flashFigures } from './flash.js';
import { int4Figures } from './int4.js';
import { int8KvCost } from './kv-cost.js';
import { ngramFigures } from './ngram.js';
import { serialFigures } from './serial.js';
import { trainFigures } from './train.js';
import { xtensaFigures } from './xtensa.js';

const root = projectRoot();
const shared = path.resolve(root, '../shared');
const MODEL = path.join(shared, 'models/stories260K.bin');
const TOKENIZER = path.join(shared, 'models/tok512.bin');
/** llama2.c run.c's host instructions per token on the same 256 forwards (callgrind): -O3 (`make run`) and -Ofast (`make runfast`), from issue 12. */
const RUNC_O3 = 1.83e6;
const RUNC_OFAST = 1.07e6;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeIt(fn: () => void, reps: number): number {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(times);
}

function run(exe: string, args: string[]): { stdout: Buffer; stderr: string } {
  const r = spawnSync(exe, args, { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${exe} ${args.join(' ')} failed: ${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr.toString() };
}

/** callgrind's instruction total for a command (null when valgrind is missing). */
function callgrindInstructions(exe: string, args: string[]): number | null {
  const out = path.join(os.tmpdir(), `lmflash-bench-${process.pid}.cg`);
  const r = spawnSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, exe, ...args], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  const m = /Collected\s*:\s*(\d+)/.exec(r.stderr);
  return m ? Number(m[1]) : null;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmflash-bench-'));
  const blobPath = path.join(dir, 'stories260K.blob');
  const { blob } = await convertCheckpoint(MODEL, TOKENIZER, { groupSize: 64 });
  writeFileSync(blobPath, blob);
  const config = readBlob(blob).config;
  const exe = nativeRunnerPath();
  const rows: [string, string, string][] = [];

  // Host instructions: 256 forward passes from "Once upon a time" (the 5
  // prompt tokens, then 252 generated as run.c does in 256 steps), minus a
  // run that only loads the blob.
  const work = ['-p', 'Once upon a time', '-n', '252'];
  const full = callgrindInstructions(exe, [blobPath, ...work]);
  const load = callgrindInstructions(exe, [blobPath, '-p', '', '-n', '0']);
  if (full !== null && load !== null) {
    const perToken = (full - load) / 256;
    rows.push([
      'host instructions / token',
      perToken.toFixed(0),
      'callgrind, 256 forwards from "Once upon a time", loading excluded; target <= 1.2 M. ' +
        `llama2.c run.c (float32, same work): 1.83 M built -O3 (\`make run\`, ${(RUNC_O3 / perToken).toFixed(2)}x this), ` +
        `1.07 M built -Ofast (\`make runfast\`, its fastest build, ${(RUNC_OFAST / perToken).toFixed(2)}x this); ` +
        'run.c is not in this repository, so those two are earlier measurements, not this run\'s',
    ]);
  } else {
    rows.push(['host instructions / token', 'n/a', 'valgrind not installed']);
  }

  const xt = await xtensaFigures(root, blobPath);
  rows.push(['Xtensa lx106 instructions / token', xt.instructionsPerToken.value, xt.instructionsPerToken.note]);
  rows.push(['  (64 forwards from BOS)', xt.fromBos.value, xt.fromBos.note]);
  rows.push(['stack bytes', xt.stackBytes.value, xt.stackBytes.note]);
  rows.push(...(await esp32s3Figures(root, blobPath)));

  rows.push(['flash bytes (blob)', String(blob.length), 'int8, group size 64, shared classifier']);
  for (const ctx of [512, 256]) {
    const p = ramPlan(config, ctx);
    rows.push([`RAM bytes at context ${ctx}`, String(p.totalBytes), `KV cache ${p.kvCacheBytes}, activations ${p.activationBytes}, sampler ${p.samplerBytes}, tokens ${p.tokenBytes}`]);
  }

  const kv = int8KvCost(MODEL, readBlob(blob), path.join(shared, 'corpora/stories260K-samples.txt'));
  rows.push([
    'int8 KV cache alone: mean KL',
    kv.meanKl.toFixed(5),
    `nats/token, float model with only K and V rounded through int8, test split (${kv.positions} positions); top-1 agreement ${(100 * kv.top1).toFixed(2)}%`,
  ]);

  // Wall clock: native core vs the TypeScript float reference, same 256 positions.
  const nativeSeconds = timeIt(() => run(exe, [blobPath, ...work]), 7);
  const ids = JSON.parse(run(exe, [blobPath, ...work, '--json']).stdout.toString()) as { prompt_tokens: number[]; generated_tokens: number[] };
  const seq = [...ids.prompt_tokens, ...ids.generated_tokens].slice(0, 256);
  const ref = new ReferenceModel(readLlama2cCheckpoint(readFileSync(MODEL)));
  const refSeconds = timeIt(() => {
    for (let p = 0; p < seq.length; p++) argmax(ref.forward(seq[p], p));
  }, 3);
  rows.push(['host tokens / s (native core)', (256 / nativeSeconds).toFixed(0), `whole process incl. start-up; ${(refSeconds / nativeSeconds).toFixed(1)}x the TypeScript float reference (${(256 / refSeconds).toFixed(0)} tok/s) in this run`]);

  const serial = await serialFigures(blobPath);
  rows.push(['serial bytes / token', serial.bytesPerToken.value, serial.bytesPerToken.note]);
  rows.push(['token arrival -> stdout (burst)', serial.burst.value, serial.burst.note]);
  rows.push(['token arrival -> stdout (paced)', serial.paced.value, serial.paced.note]);

  // int4 weights: stories260K and a stories15M-shaped model (bench/int4.ts)
  rows.push(...(await int4Figures(root, dir, MODEL, TOKENIZER)));

  rows.push(...(await ngramFigures(root, shared)));
  rows.push(...(await evalMemoryFigures(root, shared, dir)));

  // flashing and model upload against the paced virtual board (bench/flash.ts)
  rows.push(...(await flashFigures(blobPath)));

  // training throughput of lmflash's own engine (bench/train.ts)
  rows.push(...trainFigures());

  const w = Math.max(...rows.map((r) => r[0].length));
  const v = Math.max(...rows.map((r) => r[1].length));
  console.log(`lmflash bench: stories260K (dim ${config.dim}, ${config.nLayers} layers, vocab ${config.vocabSize})`);
  for (const [name, value, note] of rows) console.log(`  ${name.padEnd(w)}  ${value.padStart(v)}  ${note}`);
}

main().catch((e) => {
  console.error(`bench: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
