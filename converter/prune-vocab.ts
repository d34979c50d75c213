/**
 * Vocabulary pruning: drop the tokens a corpus never uses, so the embedding
 * (and a separate classifier) lose their rows and the blob shrinks.
 *
 * What is kept: the control tokens, every byte-fallback token (any text
 * still encodes), and every id the original tokenizer passes through while
 * encoding the corpus: the final tokens and also the intermediate pieces of
 * each BPE merge. The intermediates are what makes the pruned tokenizer
 * encode the corpus exactly as before: BPE merges pairs of pieces, so a
 * final token is reached only through the pieces it was merged from; drop
 * one and the merge cannot happen and the text encodes differently.
 * Keeping every visited id is also sufficient: the pruned vocabulary's merge
 * candidates are a subset of the original's that still holds each merge the
 * original made, with the same scores, so every step picks the same pair.
 * pruneVocabulary() checks this on the corpus anyway.
 *
 * New ids keep the original order (so with tok512 the control and byte
 * tokens keep their ids 0..258).
 */
import { LmflashError } from '../src/errors.js';
import type { FloatModel } from '../src/model.js';
import type { QuantizedMatrix4 } from '../src/quantize.js';
import { buildTokenizerData, NO_ID, pieceOf, PIECE_BYTE, PIECE_CONTROL, Tokenizer, TOKENIZER_FLAG_WORDS, type TokenizerData } from '../src/tokenizer.js';

export interface VocabPruneStats {
  originalVocab: number;
  keptVocab: number;
  /** distinct text tokens in the corpus's final encodings */
  finalTokens: number;
  /** kept only because a merge the corpus makes passes through them */
  intermediates: number;
  control: number;
  byteFallback: number;
  /** corpus lines that would encode differently if the intermediates were dropped too */
  linesChangedWithoutIntermediates: number;
  lines: number;
}

export interface VocabPruneResult {
  model: FloatModel;
  tokenizer: TokenizerData;
  /** new id → original id */
  keptIds: Uint32Array;
  /** original id → new id, -1 when dropped */
  newId: Int32Array;
  stats: VocabPruneStats;
}

/** The rows `ids` of a [rows][cols] matrix. */
function gatherRows(m: Float32Array, cols: number, ids: Uint32Array): Float32Array {
  const out = new Float32Array(ids.length * cols);
  ids.forEach((id, r) => out.set(m.subarray(id * cols, (id + 1) * cols), r * cols));
  return out;
}

/** The rows `ids` of an int4 matrix, nibbles and scales as they are (pruning the vocabulary rounds nothing again). */
export function gatherQuantizedRows(q: QuantizedMatrix4, ids: Uint32Array): QuantizedMatrix4 {
  const data = new Uint8Array(ids.length * q.rowStride);
  const scales = new Float32Array(ids.length * q.groupsPerRow);
  ids.forEach((id, r) => {
    data.set(q.data.subarray(id * q.rowStride, (id + 1) * q.rowStride), r * q.rowStride);
    scales.set(q.scales.subarray(id * q.groupsPerRow, (id + 1) * q.groupsPerRow), r * q.groupsPerRow);
  });
  return { ...q, rows: ids.length, data, scales };
}

/** The tokenizer restricted to `keptIds` (in that order), special ids and byte map remapped. */
export function restrictTokenizer(t: TokenizerData, keptIds: Uint32Array, newId: Int32Array): TokenizerData {
  const remap = (id: number) => (id === NO_ID || newId[id] < 0 ? NO_ID : newId[id]);
  return buildTokenizerData({
    pieces: Array.from(keptIds, (id) => pieceOf(t, id).slice()),
    scores: Array.from(keptIds, (id) => t.scores[id]),
    kinds: Array.from(keptIds, (id) => t.kinds[id]),
    byteIds: Uint32Array.from(t.byteIds, remap),
    bosId: remap(t.bosId),
    eosId: remap(t.eosId),
    unkId: remap(t.unkId),
    flags: t.flags,
  });
}

function keepMap(vocab: number, keep: (id: number) => boolean): { keptIds: Uint32Array; newId: Int32Array } {
  const newId = new Int32Array(vocab).fill(-1);
  const kept: number[] = [];
  for (let id = 0; id < vocab; id++) if (keep(id)) newId[id] = kept.push(id) - 1;
  return { keptIds: Uint32Array.from(kept), newId };
}

/** Lines whose encoding with `pruned` is not the remapped original encoding. */
function linesEncodingDifferently(lines: string[], original: number[][], pruned: Tokenizer, newId: Int32Array): number[] {
  const bad: number[] = [];
  lines.forEach((line, i) => {
    const got = pruned.encode(line);
    const want = original[i];
    if (got.length !== want.length || want.some((id, k) => newId[id] !== got[k])) bad.push(i);
  });
  return bad;
}

/**
 * Prunes `model`'s vocabulary to what `lines` need (see the file comment)
 * and verifies that the pruned tokenizer encodes every line to the remapped
 * original ids and decodes it back to the same bytes.
 */
export function pruneVocabulary(model: FloatModel, tokenizer: TokenizerData, lines: string[]): VocabPruneResult {
  if (tokenizer.flags & TOKENIZER_FLAG_WORDS) throw new LmflashError('vocabulary pruning needs a BPE tokenizer; this model has a word-level one');
  if (lines.length === 0) throw new LmflashError('the --vocab-from text has no non-empty lines: nothing says which tokens to keep');
  const V = tokenizer.vocabSize;
  const tok = new Tokenizer(tokenizer);
  const visited = new Set<number>();
  const original = lines.map((line) => tok.encode(line, { visited }));
  const finals = new Set<number>(original.flat());
  const isSpecial = (id: number) => tokenizer.kinds[id] === PIECE_CONTROL || tokenizer.kinds[id] === PIECE_BYTE;

  const { keptIds, newId } = keepMap(V, (id) => isSpecial(id) || visited.has(id));
  const pruned = restrictTokenizer(tokenizer, keptIds, newId);
  const prunedTok = new Tokenizer(pruned);
  const bad = linesEncodingDifferently(lines, original, prunedTok, newId);
  if (bad.length > 0) throw new Error(`internal error: the pruned tokenizer encodes ${bad.length} corpus lines differently (first: line ${bad[0]})`);
  lines.forEach((_, i) => {
    const a = tok.decode(original[i]);
    const b = prunedTok.decode(original[i].map((id) => newId[id]));
    if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) throw new Error(`internal error: the pruned tokenizer decodes line ${i} differently`);
  });

  // How many lines the intermediates save (the measure of why they are kept).
  const finalsOnly = keepMap(V, (id) => isSpecial(id) || finals.has(id));
  const finalsTok = new Tokenizer(restrictTokenizer(tokenizer, finalsOnly.keptIds, finalsOnly.newId));
  const changed = linesEncodingDifferently(lines, original, finalsTok, finalsOnly.newId).length;

  const c = model.config;
  const w = model.weights;
  const prunedModel: FloatModel = {
    config: { ...c, vocabSize: keptIds.length },
    weights: {
      ...w,
      tokenEmbedding: gatherRows(w.tokenEmbedding, c.dim, keptIds),
      classifier: w.classifier ? gatherRows(w.classifier, c.dim, keptIds) : null,
    },
  };
  let control = 0;
  let bytes = 0;
  for (let id = 0; id < V; id++) {
    if (tokenizer.kinds[id] === PIECE_CONTROL) control++;
    if (tokenizer.kinds[id] === PIECE_BYTE) bytes++;
  }
  let intermediates = 0;
  for (const id of visited) if (!finals.has(id) && !isSpecial(id)) intermediates++;
  return {
    model: prunedModel,
    tokenizer: pruned,
    keptIds,
    newId,
    stats: {
      originalVocab: V,
      keptVocab: keptIds.length,
      finalTokens: [...finals].filter((id) => !isSpecial(id)).length,
      intermediates,
      control,
      byteFallback: bytes,
      linesChangedWithoutIntermediates: changed,
      lines: lines.length,
    },
  };
}
