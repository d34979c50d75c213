/**
 * N-gram blobs on the C core (lmf-run, lmf-sim): the same float32
 * log-probabilities as the TypeScript scorer, bit for bit, for word and BPE
 * models of every order, quantized or not, pruned or not; the same word
 * encoding; greedy generation that follows the scorer's argmax; and the CLI
 * around it (train ngram, inspect, eval, generate on the core and on the
 * virtual board).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { trainNgram, type TrainNgramOptions } from '../converter/ngram/train.js';
import { readTokenizerFile } from '../host/commands/train.js';
import { cli } from './cli-helpers.js';
import { ngramRamPlan, NgramLm, readNgramBlob, type NgramView } from '../src/ngram.js';
import { Tokenizer } from '../src/tokenizer.js';
import { coreJson, runCore, tempDir } from './native-helpers.js';
import { SHARED, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const dir = tempDir('ngram');
const kjv = readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').slice(0, 4000).map(splitPunctuationLowercase);
const train = kjv.filter((_, i) => i % 10 !== 0);
const held = kjv.filter((_, i) => i % 10 === 0);
const stories = readFileSync(STORIES_SAMPLES, 'utf8').split('\n').filter((l) => l.length > 0);

interface Variant {
  name: string;
  file: string;
  view: NgramView;
  texts: string[];
}
const variants: Variant[] = [];

beforeAll(async () => {
  const bpe = await readTokenizerFile(STORIES_TOKENIZER);
  const specs: [string, string[], TrainNgramOptions, string[]][] = [
    ['words, order 3, 8-bit', train, { order: 3 }, held],
    ['words, order 5, float32, pruned 0 0 1', train, { order: 5, quantize: 0, prune: [0, 0, 1] }, held],
    ['words, order 2, 4-bit', train, { order: 2, quantize: 4 }, held],
    ['words, order 1', train, { order: 1 }, held],
    ['BPE tok512, order 4, 8-bit', stories.slice(200, 700), { order: 4, tokenizer: bpe }, stories.slice(0, 10)],
  ];
  for (const [name, lines, opts, texts] of specs) {
    const { blob } = trainNgram(lines, opts);
    const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}.blob`);
    writeFileSync(file, blob);
    variants.push({ name, file, view: readNgramBlob(blob), texts });
  }
}, 120_000);

/** Teacher-forced logits of the C core for these sequences (each from position 0). */
function coreRows(file: string, seqs: number[][]): Uint32Array {
  const r = runCore(file, ['--tokens', seqs.map((s) => s.join(',')).join(';'), '--logits']);
  if (r.status !== 0) throw new Error(r.stderr);
  return new Uint32Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.length / 4);
}

describe('C core and TypeScript scorer', () => {
  it('give bit-identical log-probabilities for every token at every position (word and BPE models, orders 1-5, float32 and 4/8-bit, pruned)', () => {
    expect(variants).toHaveLength(5);
    for (const v of variants) {
      const tok = new Tokenizer(v.view.tokenizer);
      const V = v.view.config.vocabSize;
      // held-out lines (with unknown words), a line of only unknown words, and one long run across line ends
      const seqs = v.texts.map((t) => [...tok.encode(t), v.view.tokenizer.eosId]);
      seqs.push(tok.encode('zzqx qqzx xxqz'));
      seqs.push(tok.encode(v.texts.slice(0, 4).join(' ')).slice(0, 100));
      const core = coreRows(v.file, seqs);
      const lm = new NgramLm(v.view);
      const row = new Float32Array(V);
      const bits = new Uint32Array(row.buffer);
      let at = 0;
      let differ = 0;
      let single = 0;
      for (const s of seqs) {
        s.forEach((id, pos) => {
          lm.forward(id, pos);
          lm.logits(row);
          for (let i = 0; i < V; i++) if (bits[i] !== core[at * V + i]) differ++;
          // the one-token path (eval's) agrees with the full vector
          if (pos + 1 < s.length && lm.logit(s[pos + 1]) !== row[s[pos + 1]]) single++;
          at++;
        });
      }
      expect(at * V, v.name).toBe(core.length);
      expect(differ, v.name).toBe(0);
      expect(single, v.name).toBe(0);
    }
  });

  it('the logits are a distribution: they sum to one for the float32 model', () => {
    const v = variants[1];
    const tok = new Tokenizer(v.view.tokenizer);
    const ids = tok.encode(v.texts[2]);
    const lm = new NgramLm(v.view);
    ids.forEach((id, pos) => {
      lm.forward(id, pos);
      const row = lm.logits();
      let sum = 0;
      row.forEach((l) => (sum += Math.exp(l)));
      expect(sum).toBeCloseTo(1, 4);
      expect(row[v.view.tokenizer.bosId]).toBeLessThan(-200); // <s> is never predicted
    });
  });
});

describe('word encoding in the C core', () => {
  it('splits on ASCII whitespace and looks up " word" exactly as the TypeScript tokenizer', () => {
    const v = variants[0];
    const tok = new Tokenizer(v.view.tokenizer);
    const prompts: Uint8Array[] = [
      'in the beginning god created the heaven',
      '  and\tthe\n\nlord \r\n said\v\funto ',
      'Moses , unknownword ; zzz',
      '',
      '   ',
      'x'.repeat(900),
      'héllo wörld 你好 😀',
    ].map((s) => Buffer.from(s, 'utf8'));
    prompts.push(Uint8Array.from([0xff, 0x80, 0x20, 0xc3, 0x20, 0x61, 0x6e, 0x64]));
    for (const p of prompts) {
      const core = coreJson(v.file, ['--prompt-hex', Buffer.from(p).toString('hex'), '-n', '0']);
      expect(core.prompt_tokens).toEqual(tok.encode(p));
    }
  });
});

describe('generation', () => {
  it('greedy tokens are the scorer\'s argmax at every step, and the text is their decoding', () => {
    for (const v of [variants[0], variants[4]]) {
      const tok = new Tokenizer(v.view.tokenizer);
      const run = coreJson(v.file, ['-p', v.name.startsWith('BPE') ? 'Once upon a time' : 'and the lord said', '-n', '60', '--json']);
      const ids = [...run.prompt_tokens, ...run.generated_tokens];
      const lm = new NgramLm(v.view);
      for (let pos = 0; pos + 1 < ids.length; pos++) {
        lm.forward(ids[pos], pos);
        if (pos + 1 < run.prompt_tokens.length) continue;
        const row = lm.logits();
        let best = 0;
        for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
        expect(ids[pos + 1]).toBe(best);
      }
      const last = run.generated_tokens.at(-1);
      const shown = last === v.view.tokenizer.eosId ? run.generated_tokens.slice(0, -1) : run.generated_tokens;
      expect(run.text).toBe(tok.decodeText(shown, run.prompt_tokens.at(-1)));
    }
  });

  it('--info reports the N-gram model and the RAM it takes', () => {
    const v = variants[0];
    const info = JSON.parse(runCore(v.file, ['--info', '--ctx', '200']).stdout.toString('utf8'));
    const plan = ngramRamPlan(v.view.config, 200);
    expect(info).toMatchObject({ arch: 'ngram', order: 3, vocab_size: v.view.config.vocabSize, ctx: 200 });
    expect([info.state_bytes, info.sampler_bytes, info.token_bytes, info.arena_bytes]).toEqual([plan.logitsBytes, plan.samplerBytes, plan.tokenBytes, plan.totalBytes]);
  });
});

describe('the CLI', () => {
  const run = cli;
  const text = path.join(dir, 'kjv-words.txt');
  const blob = path.join(dir, 'cli.blob');

  beforeAll(() => writeFileSync(text, kjv.join('\n') + '\n'));

  it('train ngram writes a blob and says what it holds', async () => {
    const r = await run('train', 'ngram', text, '--split', 'train', '--order', '3', '--prune', '0', '0', '1', '-o', blob, '--arpa', path.join(dir, 'cli.arpa'));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/3,600 sentences/);
    expect(r.out).toMatch(/wrote .*cli\.blob: [\d,]+ bytes/);
    const view = readNgramBlob(readFileSync(blob));
    expect(view.config.prune).toEqual([0, 0, 1]);
    expect(readFileSync(path.join(dir, 'cli.arpa'), 'utf8')).toMatch(new RegExp(`ngram 3=${view.levels[2].count}\\n`));
  });

  it('inspect shows orders, counts and bytes', async () => {
    const r = await run('inspect', blob, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    const view = readNgramBlob(readFileSync(blob));
    expect(j).toMatchObject({ architecture: 'ngram', order: 3, tokens: 'words', valueBits: 8, flashBytes: view.fileSize, prune: [0, 0, 1] });
    expect(j.orders.map((o: { ngrams: number }) => o.ngrams)).toEqual(view.levels.map((l) => l.count));
    const t = await run('inspect', blob);
    expect(t.out).toMatch(/3-gram language model/);
    expect(t.out).toMatch(/flash: [\d,]+ bytes .* bytes per n-gram/);
  });

  it('eval gives the same perplexity from the TypeScript scorer and from the native core', async () => {
    const ts = JSON.parse((await run('eval', blob, '--text', text, '--split', 'test', '--limit', '60', '--json')).out);
    const native = JSON.parse((await run('eval', blob, '--text', text, '--split', 'test', '--limit', '60', '--native', '--json')).out);
    expect(ts.architecture).toBe('ngram');
    expect(ts.oov).toBeGreaterThan(0);
    expect(ts.perplexityExcludingOov).toBeLessThan(ts.perplexity);
    expect(native.perplexity).toBe(ts.perplexity);
    expect(native.perplexityExcludingOov).toBe(ts.perplexityExcludingOov);
    const human = await run('eval', blob, '--text', text, '--split', 'test', '--limit', '60');
    expect(human.out).toMatch(/perplexity including OOVs: [\d.]+\nperplexity excluding OOVs: [\d.]+/);
  });

  it('generate gives the same tokens on the native core and on the virtual board (serial session)', async () => {
    const args = ['-p', 'and the lord said unto', '-n', '30', '--seed', '11', '--json'];
    const native = JSON.parse((await run('generate', '--model', blob, ...args)).out);
    const board = JSON.parse((await run('generate', '--sim', '--model', blob, ...args)).out);
    expect(board.generated_tokens).toEqual(native.generated_tokens);
    expect(board.text).toBe(native.text);
    expect(native.generated_tokens.length).toBeGreaterThan(0);
  }, 60_000);

  it('trains on a word vocabulary from `lmflash tokenizer train --type word` (words outside it are <unk>)', async () => {
    const vocab = path.join(dir, 'words.bin');
    expect((await run('tokenizer', 'train', text, '--type', 'word', '--vocab', '1000', '-o', vocab)).code).toBe(0);
    const out = path.join(dir, 'word-vocab.blob');
    const r = await run('train', 'ngram', text, '--order', '3', '--tokenizer', vocab, '-o', out);
    expect(r.err).toBe('');
    const view = readNgramBlob(readFileSync(out));
    expect(view.config.vocabSize).toBe(1000);
    const prompt = 'and the lord zzqx said unto moses';
    const core = coreJson(out, ['-p', prompt, '-n', '0']);
    expect(core.prompt_tokens).toEqual(new Tokenizer(view.tokenizer).encode(prompt));
    expect(core.prompt_tokens).toContain(view.tokenizer.unkId);
  });

  it('refuses what it cannot do, saying why', async () => {
    expect((await run('train', 'ngram', text, '--order', '6', '-o', blob)).err).toMatch(/--order/);
    expect((await run('train', 'ngram', text, '--order', '3', '--prune', '1', '-o', blob)).err).toMatch(/cannot drop unigrams/);
    expect((await run('train', 'ngram', text, '--order', '3', '--tokens', 'words', '--tokenizer', STORIES_TOKENIZER, '-o', blob)).err).toMatch(/alternatives/);
    expect((await run('eval', blob, '--text', text, '--reference', 'x.bin')).err).toMatch(/N-gram blob/);
  });
});
