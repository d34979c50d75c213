/** ONNX Runtime (the independent engine) and the run.c references, for the ONNX tests. */
import ort from 'onnxruntime-node';
import { ReferenceModel } from '../src/reference.js';
import type { FloatModel } from '../src/model.js';

/** A session on one thread (the machine is shared), quiet about graph-level notices. */
export function ortSession(model: Uint8Array | string): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };
  return typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}

/**
 * Logits for a batch of equally long token sequences: [batch][position] rows
 * of vocab floats. `extraInputs` (e.g. attention_mask) are fed all ones.
 */
export async function ortLogits(session: ort.InferenceSession, batch: number[][], extraInputs: string[] = []): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const S = batch[0].length;
  const ids = BigInt64Array.from(batch.flat().map((t) => BigInt(t)));
  const feeds: Record<string, ort.Tensor> = { [session.inputNames[0]]: new ort.Tensor('int64', ids, [batch.length, S]) };
  for (const name of extraInputs) feeds[name] = new ort.Tensor('int64', new BigInt64Array(batch.length * S).fill(1n), [batch.length, S]);
  const out = await session.run(feeds);
  const logits = out[session.outputNames[0]];
  return { data: logits.data as Float32Array, dims: logits.dims };
}


/** The reference forward pass's logits for every position of `tokens`, concatenated. */
export function referenceLogits(model: FloatModel, tokens: number[]): Float32Array {
  const rm = new ReferenceModel(model, { maxPositions: tokens.length });
  const V = model.config.vocabSize;
  const out = new Float32Array(tokens.length * V);
  tokens.forEach((t, pos) => out.set(rm.forward(t, pos), pos * V));
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = d; // NaN propagates as NaN
  }
  return worst;
}

export { readReferenceRun, type ReferenceRun } from './reference-runs.js';
