/** `lmflash tokenizer train`: options, output that `convert` takes, one-line errors, atomic output. */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeTokenizerBin, vocabularyType, wordVocabularyFromBin } from '../converter/tokenizer/vocab-file.js';
import { readBlob } from '../src/blob.js';
import { readTokenizerBin } from '../src/llama2c.js';
import { Tokenizer, tokenizerFromBin } from '../src/tokenizer.js';
import { tempDir } from './native-helpers.js';
import { STORIES_MODEL, STORIES_SAMPLES } from './paths.js';
import { chineseSample, readSplit } from './tokenizer-train-helpers.js';
import { cli as run } from './cli-helpers.js';

const dir = tempDir('tok-cli');
const storiesTrain = path.join(dir, 'stories-train.txt');
writeFileSync(storiesTrain, readSplit(STORIES_SAMPLES).train.join('\n') + '\n');


const tmpLeft = () => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

describe('lmflash tokenizer train', () => {
  it('trains a bpe vocabulary (the default) that convert takes', async () => {
    const out = path.join(dir, 'tok512.bin');
    const r = await run('tokenizer', 'train', storiesTrain, '--vocab', '512', '-o', out);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^bpe vocabulary of 512 tokens: 3 control, 256 byte fallback, \d+ characters, \d+ merges; longest piece \d+ bytes$/m);
    expect(r.out).toMatch(/^learned from 1,792 lines \(764,253 characters, [\d,]+ distinct word segments\) in \d+\.\d\d s \([\d,]+ merges\/s\)$/m);
    const bytes = readFileSync(out);
    expect(r.out).toContain(`wrote ${out}: ${bytes.length} bytes`);
    expect(tmpLeft()).toEqual([]);
    const tok = new Tokenizer(tokenizerFromBin(readTokenizerBin(bytes, 512)));
    expect(tok.decodeText(tok.encode('Once upon a time, Lily'))).toBe('Once upon a time, Lily');
    // stories260K has 512 tokens too: convert packs the model with this tokenizer into a blob,
    // and its tokenizer check says that it is not the one stories260K was trained with
    const blob = path.join(dir, 'stories-own-tok.blob');
    const c = await run('convert', STORIES_MODEL, '--tokenizer', out, '-o', blob);
    expect(c.err).toMatch(/^lmflash: warning: .*the tokenizer is probably not the one the model was trained with/);
    expect(c.code).toBe(0);
    const view = readBlob(readFileSync(blob));
    expect(Buffer.from(view.tokenizer.pieceBytes).equals(Buffer.from(tok.data.pieceBytes))).toBe(true);
  });

  it('trains char and word vocabularies and takes the bpe options', async () => {
    const zh = path.join(dir, 'zh.txt');
    writeFileSync(zh, chineseSample().join('\n'));
    const charOut = path.join(dir, 'zh-char.bin');
    const c = await run('tokenizer', 'train', zh, '--vocab', '300', '--type', 'char', '-o', charOut);
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/^char vocabulary of 300 tokens: 3 control, 256 byte fallback, 41 characters \(of \d+ seen, covering \d+\.\d\d% of the text's characters\)$/m);
    expect(vocabularyType(decodeTokenizerBin(readFileSync(charOut)))).toBe('char');

    const wordOut = path.join(dir, 'words.bin');
    const w = await run('tokenizer', 'train', storiesTrain, '--vocab', '1000', '--type', 'word', '-o', wordOut);
    expect(w.code).toBe(0);
    expect(w.out).toMatch(/^word vocabulary of 1,000 tokens: 3 control, the <words> marker, 996 words \(of [\d,]+ distinct, covering \d+\.\d\d% of [\d,]+ words in 1,792 lines\)$/m);
    const words = wordVocabularyFromBin(decodeTokenizerBin(readFileSync(wordOut)));
    expect(words.vocabSize).toBe(1000);
    expect(words.idOf('the')).toBeLessThan(10);
    expect(words.idOf('Lily')).toBeGreaterThan(3);

    const opts = path.join(dir, 'opts.bin');
    const o = await run('tokenizer', 'train', storiesTrain, '--vocab', '600', '--max-piece-chars', '5', '--no-split-scripts', '--character-coverage', '0.9999', '-o', opts);
    expect(o.code).toBe(0);
    const bin = decodeTokenizerBin(readFileSync(opts));
    expect(bin.pieces).toHaveLength(600);
    const texts = bin.pieces.slice(259).map((p) => Buffer.from(p).toString());
    expect(Math.max(...texts.map((t) => [...t].length))).toBeLessThanOrEqual(5);
    expect(texts.some((t) => /[a-z][.,!"]/.test(t))).toBe(true);
    expect(o.out).toMatch(/characters \(of \d+ seen\)/);
  });

  it('fails with one clear line and leaves the old output alone', async () => {
    const out = path.join(dir, 'kept.bin');
    writeFileSync(out, 'old content');
    const empty = path.join(dir, 'empty.txt');
    writeFileSync(empty, '\n\n\n');
    const latin1 = path.join(dir, 'latin1.txt');
    writeFileSync(latin1, Buffer.from('caf\xe9 au lait\n', 'latin1'));
    const small = path.join(dir, 'small.txt');
    writeFileSync(small, 'the cat sat on the mat\n');
    const cases: [string[], RegExp][] = [
      [[storiesTrain, '--vocab', '200'], /--vocab 200: a bpe vocabulary of 200 tokens is too small: ids 0\.\.258 are the 3 control and 256 byte-fallback tokens, so it needs at least 260/],
      [[storiesTrain, '--vocab', '258', '--type', 'char'], /a char vocabulary of 258 tokens is too small/],
      [[storiesTrain, '--vocab', '4', '--type', 'word'], /a word vocabulary of 4 tokens is too small: .* at least 5/],
      [[path.join(dir, 'missing.txt'), '--vocab', '512'], /cannot read the training text .*missing\.txt: no such file/],
      [[dir, '--vocab', '512'], /it is a folder/],
      [[empty, '--vocab', '512'], /empty\.txt: the training text is empty/],
      [[latin1, '--vocab', '512'], /latin1\.txt is not valid UTF-8 \(first bad byte at offset 3\)/],
      [[small, '--vocab', '5000'], /small\.txt: the training text only supports a bpe vocabulary of \d+ tokens .*use --vocab \d+ or less/],
      [[small, '--vocab', '512', '--type', 'char'], /only \d+ distinct characters/],
      [[storiesTrain, '--vocab', '512', '--type', 'word', '--max-piece-chars', '4'], /--max-piece-chars applies only to --type bpe, not word/],
    ];
    for (const [args, message] of cases) {
      const r = await run('tokenizer', 'train', ...args, '-o', out);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(readFileSync(out, 'utf8')).toBe('old content');
    }
    const noDir = await run('tokenizer', 'train', small, '--vocab', '264', '-o', path.join(dir, 'no/such/dir/t.bin'));
    expect(noDir.code).toBe(1);
    expect(noDir.err).toMatch(/folder .* does not exist/);
    // commander's own checks: a required option, a bad choice, a bad number
    for (const argv of [
      ['tokenizer', 'train', small, '-o', out],
      ['tokenizer', 'train', small, '--vocab', '512', '--type', 'sentencepiece', '-o', out],
      ['tokenizer', 'train', small, '--vocab', 'lots', '-o', out],
      ['tokenizer', 'train', small, '--vocab', '512', '--character-coverage', '1.5', '-o', out],
      ['tokenizer', 'train', small, '--vocab', '512', '--max-piece-chars', '300', '-o', out],
    ]) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).not.toBe(0);
      expect(r.err).toMatch(/error: (required option|option)/);
    }
    expect(readFileSync(out, 'utf8')).toBe('old content');
    expect(tmpLeft()).toEqual([]);
  });

  it('replaces an existing output atomically', async () => {
    const out = path.join(dir, 'replace.bin');
    writeFileSync(out, 'old content');
    const small = path.join(dir, 'small2.txt');
    writeFileSync(small, 'the cat sat on the mat\nthe dog sat on the log\n');
    const r = await run('tokenizer', 'train', small, '--vocab', '275', '-o', out);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(decodeTokenizerBin(readFileSync(out)).pieces).toHaveLength(275);
    expect(tmpLeft()).toEqual([]);
  });
});
