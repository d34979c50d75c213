/**
 * Mixing sources with weights. A source of weight w contributes each of its
 * cleaned documents floor(w) times, plus once more with probability
 * w − floor(w), decided by a hash of (seed, source, document): the same seed
 * always gives the same output, whatever the order of processing. The copies
 * of a document are a whole pass of its source apart, and the sources are
 * interleaved evenly, so that an up-sampled source is not one block of
 * repeated text.
 */
import { fmix32 } from './hash.js';
import { readLines } from './sources.js';

/** A number in [0, 1) determined by its arguments. */
function unitHash(seed: number, source: number, index: number): number {
  return fmix32(fmix32(fmix32(seed) ^ source) ^ index) / 2 ** 32;
}

/** How many times document `index` of `source` appears in the output. */
export function copiesOf(weight: number, seed: number, source: number, index: number): number {
  const whole = Math.floor(weight);
  return whole + (weight > whole && unitHash(seed, source, index) < weight - whole ? 1 : 0);
}

/** The copies of a source's documents (one per line in `spool`), one pass over the file per copy. */
export async function* sourceCopies(spool: string, weight: number, seed: number, source: number): AsyncGenerator<string> {
  for (let pass = 0; pass < Math.ceil(weight); pass++) {
    let index = 0;
    for await (const doc of readLines(spool)) {
      if (copiesOf(weight, seed, source, index++) > pass) yield doc;
    }
  }
}

export interface MixStream {
  /** How many documents `docs` yields. */
  total: number;
  docs: AsyncIterator<string>;
}

/**
 * Merges the streams so that each is spread evenly over the output: the
 * next document always comes from the stream furthest behind its share.
 * Calls `taken(i)` for each document taken from stream i.
 */
export async function* interleave(streams: MixStream[], taken: (stream: number) => void): AsyncGenerator<string> {
  const done = streams.map(() => 0);
  try {
    for (;;) {
      let next = -1;
      for (let i = 0; i < streams.length; i++) {
        if (done[i] === streams[i].total) continue;
        if (next < 0 || (done[i] + 0.5) / streams[i].total < (done[next] + 0.5) / streams[next].total) next = i;
      }
      if (next < 0) return;
      const r = await streams[next].docs.next();
      if (r.done) throw new Error(`mix: source ${next} ended after ${done[next]} of ${streams[next].total} documents`);
      done[next]++;
      taken(next);
      yield r.value;
    }
  } finally {
    // Stopped early (a write failed): close the files the streams are reading.
    for (const s of streams) await s.docs.return?.();
  }
}
