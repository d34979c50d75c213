import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTokenizerBin } from '../src/llama2c.js';
import {
  buildTokenizerData,
  NO_ID,
  PIECE_BYTE,
  PIECE_CONTROL,
  PIECE_TEXT,
  Tokenizer,
  tokenizerFromBin,
  tokenizerProblems,
} from '../src/tokenizer.js';
import { STORIES_REFERENCE, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const tok = new Tokenizer(tokenizerFromBin(readTokenizerBin(readFileSync(STORIES_TOKENIZER), 512)));

/** tokenize.tsv: `input<TAB>ids`; the one input with tabs in it keeps all fields but the last. */
function readCases(): { input: Buffer; ids: number[] }[] {
  const raw = readFileSync(path.join(STORIES_REFERENCE, 'tokenize.tsv'));
  const lines = raw.toString('latin1').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => {
    const tab = line.lastIndexOf('\t');
    return {
      input: Buffer.from(line.slice(0, tab), 'latin1'),
      ids: line.slice(tab + 1).trim().split(/\s+/).map(Number),
    };
  });
}

describe('tokenizer from tok512.bin', () => {
  it('classifies control, byte-fallback and text tokens', () => {
    const d = tok.data;
    expect([d.unkId, d.bosId, d.eosId]).toEqual([0, 1, 2]);
    expect(Array.from(d.kinds.subarray(0, 3))).toEqual([PIECE_CONTROL, PIECE_CONTROL, PIECE_CONTROL]);
    expect(Buffer.from(tok.piece(1)).toString()).toBe('<s>');
    for (let b = 0; b < 256; b++) {
      expect(d.byteIds[b]).toBe(b + 3);
      expect(d.kinds[b + 3]).toBe(PIECE_BYTE);
      expect(Array.from(tok.piece(b + 3))).toEqual([b]);
    }
    expect(d.kinds[259]).toBe(PIECE_TEXT);
    expect(Buffer.from(tok.piece(259)).toString()).toBe(' t');
    expect(d.sorted.length).toBe(512 - 259);
    expect(tokenizerProblems(d)).toEqual([]);
  });

  it('encodes every tokenize.tsv case exactly like run.c', () => {
    const cases = readCases();
    expect(cases.length).toBeGreaterThan(200);
    const tabCase = cases.find((c) => c.input.toString() === 'tab\tseparated\twords');
    expect(tabCase).toBeDefined();
    const failures = cases
      .map((c) => ({ input: c.input.toString('utf8'), want: c.ids, got: tok.encode(c.input) }))
      .filter((c) => c.got.join(' ') !== c.want.join(' '));
    expect(failures.slice(0, 5)).toEqual([]);
  });

  it('accepts strings as UTF-8 and honours bos/eos options', () => {
    expect(tok.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
    expect(tok.encode('Once upon a time', { bos: false, eos: true })).toEqual([403, 407, 261, 378, 2]);
    expect(tok.encode('')).toEqual([1]);
  });

  it('round-trips every sample story byte for byte', () => {
    const lines = readFileSync(STORIES_SAMPLES).toString('latin1').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    expect(lines.length).toBe(1992);
    let bad = 0;
    for (const l of lines) {
      const bytes = Buffer.from(l, 'latin1');
      const ids = tok.encode(bytes);
      expect(ids[0]).toBe(1);
      if (!Buffer.from(tok.decode(ids)).equals(bytes)) bad++;
    }
    expect(bad).toBe(0);
  });

  it('round-trips odd inputs: leading spaces, byte fallback, invalid UTF-8', () => {
    for (const s of ['  two', ' x', '日本', '\u{1F642}', 'a\tb\nc']) {
      expect(tok.decodeText(tok.encode(s))).toBe(s);
    }
    const invalid = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x41, 0xc3]);
    expect(Buffer.from(tok.decode(tok.encode(invalid))).equals(invalid)).toBe(true);
  });

  it('decodes like run.c: control tokens print nothing, BOS eats one leading space', () => {
    expect(tok.decodeText([1, 403, 407])).toBe('Once upon');
    expect(tok.decodeText([403, 407])).toBe(' Once upon');
    expect(tok.decodeText([1, 2, 0])).toBe('');
    expect(tok.decodeToken(1, 3 + 0x20)).toEqual(Uint8Array.of(0x20)); // a byte token keeps its space
  });
});

describe('tokenizer structure', () => {
  it('indexes distinct non-empty text pieces only, lower id wins', () => {
    const enc = (s: string) => Buffer.from(s);
    const d = buildTokenizerData({
      pieces: [enc('<unk>'), enc('b'), enc('a'), enc('ab'), enc('a'), enc('')],
      scores: [0, 0, 0, 1, 0, 0],
      kinds: [PIECE_CONTROL, PIECE_TEXT, PIECE_TEXT, PIECE_TEXT, PIECE_TEXT, PIECE_TEXT],
      byteIds: new Uint32Array(256).fill(NO_ID),
      bosId: NO_ID,
      eosId: NO_ID,
      unkId: 0,
      flags: 0,
    });
    expect(Array.from(d.sorted)).toEqual([2, 3, 1]);
    const t = new Tokenizer(d);
    expect(t.encode('abz')).toEqual([3, 0]); // 'z' has no piece and no byte token: unk
  });

  it('merges the highest-scoring pair first and the leftmost on ties', () => {
    const enc = (s: string) => Buffer.from(s);
    const pieces = ['a', 'b', 'c', 'ab', 'bc', 'abc', 'cab'];
    const make = (scores: number[]) =>
      new Tokenizer(
        buildTokenizerData({
          pieces: pieces.map(enc),
          scores,
          kinds: pieces.map(() => PIECE_TEXT),
          byteIds: new Uint32Array(256).fill(NO_ID),
          bosId: NO_ID,
          eosId: NO_ID,
          unkId: NO_ID,
          flags: 0,
        }),
      );
    // ab (-1) beats bc (-2): a b c -> ab c -> abc
    expect(make([0, 0, 0, -1, -2, -3, -9]).encode('abc')).toEqual([5]);
    // bc wins: a bc, and "abc" via a+bc
    expect(make([0, 0, 0, -2, -1, -3, -9]).encode('abcab')).toEqual([5, 3]);
    // tie between ab and bc: leftmost (ab) first
    expect(make([0, 0, 0, -1, -1, -3, -9]).encode('abcbc')).toEqual([5, 4]);
  });
});
