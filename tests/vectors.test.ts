import { describe, expect, it } from 'vitest';
import { DTYPE_Q4, DTYPE_Q8, readBlob } from '../src/blob.js';
import { Tokenizer } from '../src/tokenizer.js';
import { buildVectors, TINY_TEXTS, tinyTokenizer, writeVectors } from './vectors.js';

describe('synthetic test vectors', () => {
  const vectors = buildVectors();

  it('are deterministic', () => {
    const again = buildVectors();
    vectors.forEach((v, i) => {
      expect(again[i].blob.equals(v.blob)).toBe(true);
      expect(again[i].logits).toEqual(v.logits);
    });
    expect(buildVectors(2)[0].blob.equals(vectors[0].blob)).toBe(false);
  });

  it('are valid blobs covering tail groups, both classifier kinds and per-row scales', () => {
    const groups = vectors.map((v) => {
      const view = readBlob(v.blob);
      const w2 = view.tensors.find((t) => t.name === 'layers.0.w2')!;
      const emb = view.tensors.find((t) => t.name === 'token_embedding')!;
      return [view.config.groupSize, view.config.sharedClassifier, view.tensors.length, w2.cols, w2.dtype, emb.dtype, view.versionMinor];
    });
    expect(groups).toEqual([
      [16, true, 20, 40, DTYPE_Q8, DTYPE_Q8, 0],
      [32, false, 21, 40, DTYPE_Q8, DTYPE_Q8, 0],
      [48, true, 20, 40, DTYPE_Q8, DTYPE_Q8, 0],
      [16, true, 20, 40, DTYPE_Q4, DTYPE_Q4, 1],
      [32, false, 21, 41, DTYPE_Q4, DTYPE_Q8, 1],
    ]);
  });

  it('tokenize as expected, with merges, ties, byte fallback and invalid UTF-8', () => {
    const tok = new Tokenizer(tinyTokenizer());
    const show = (ids: number[]) => ids.map((id) => Buffer.from(tok.piece(id)).toString('latin1'));
    expect(show(tok.encode('the cat'))).toEqual(['<s>', ' the', ' cat']);
    expect(show(tok.encode('abcbc'))).toEqual(['<s>', ' a', 'bc', 'bc']);
    // ab and bc tie: the leftmost pair merges, leaving c alone.
    expect(show(tok.encode('.abc'))).toEqual(['<s>', ' ', '.', 'ab', 'c']);
    for (const v of vectors) {
      v.encodings.forEach((e, i) => {
        expect(e.input).toEqual(TINY_TEXTS[i]);
        expect(Buffer.from(tok.decode(e.ids)).equals(Buffer.from(e.input))).toBe(true);
      });
    }
    // 'ö' has no piece: its two bytes fall back to byte tokens 3 + 0xc3 and 3 + 0xb6.
    expect(vectors[0].encodings[6].ids).toContain(3 + 0xc3);
    expect(vectors[0].encodings[6].ids).toContain(3 + 0xb6);
  });

  it('have a greedy run with finite logits', () => {
    for (const v of vectors) {
      expect(v.generated.length).toBe(v.steps - v.prompt.length + 1);
      expect(v.logits.every(Number.isFinite)).toBe(true);
    }
  });

  // Writes the vectors for the C tests when asked: LMFLASH_VECTORS_OUT=<dir>.
  it.runIf(process.env.LMFLASH_VECTORS_OUT)('writes the vectors to LMFLASH_VECTORS_OUT', async () => {
    const files = await writeVectors(process.env.LMFLASH_VECTORS_OUT as string);
    expect(files.length).toBe(15);
  });
});
