/**
 * Vocabulary pruning on stories260K with the train split of the samples as
 * --vocab-from: the pruned tokenizer still round-trips text, the ids are
 * remapped consistently (logits of the float model and of the C core are the
 * original's restricted to the kept ids), the blob is smaller, and the C core
 * runs it the same on host and under QEMU lx106.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, loadCheckpoint } from '../converter/convert.js';
import { pruneVocabulary, type VocabPruneResult } from '../converter/prune-vocab.js';
import { splitLines } from '../host/commands/eval.js';
import { buildXtensa, findQemuToolchain, runOnQemu } from '../host/qemu.js';
import { blobToFloatModel, DTYPE_F32, DTYPE_Q4, quantizedMatrices4, readBlob, writeBlob } from '../src/blob.js';
import { ReferenceModel } from '../src/reference.js';
import { Tokenizer } from '../src/tokenizer.js';
import { cli } from './cli-helpers.js';
import { coreJson, coreLogits, runCore, storiesBlob, tempDir } from './native-helpers.js';
import { PROJECT_ROOT, STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const text = readFileSync(STORIES_SAMPLES, 'utf8');
const train = splitLines(text, 'train');
const test = splitLines(text, 'test');

describe('vocabulary pruning of stories260K', () => {
  let loaded: Awaited<ReturnType<typeof loadCheckpoint>>;
  let pruned: VocabPruneResult;
  let original: Tokenizer;
  let smaller: Tokenizer;

  beforeAll(async () => {
    loaded = await loadCheckpoint(STORIES_MODEL, STORIES_TOKENIZER);
    pruned = pruneVocabulary(loaded.model, loaded.tokenizer, train);
    original = new Tokenizer(loaded.tokenizer);
    smaller = new Tokenizer(pruned.tokenizer);
  });

  it('drops tokens but keeps the control and every byte-fallback token', () => {
    const s = pruned.stats;
    expect(s.keptVocab).toBeLessThan(512);
    expect(s.keptVocab).toBe(s.finalTokens + s.intermediates + s.control + s.byteFallback);
    expect(pruned.tokenizer.byteIds.every((id) => id !== 0xffffffff)).toBe(true);
    const t = pruned.tokenizer;
    expect([t.unkId, t.bosId, t.eosId].map((id) => original.decodeText([pruned.keptIds[id]]))).toEqual(['', '', '']);
    expect([t.unkId, t.bosId, t.eosId].map((id) => loaded.tokenizer.kinds[pruned.keptIds[id]])).toEqual([2, 2, 2]);
    // the intermediates matter: without them the corpus would encode differently
    expect(s.intermediates).toBeGreaterThan(0);
    expect(s.linesChangedWithoutIntermediates).toBeGreaterThan(0);
  });

  it('encodes the train split to the remapped original ids', () => {
    for (const line of train) {
      expect(smaller.encode(line)).toEqual(original.encode(line).map((id) => pruned.newId[id]));
    }
  });

  it('round-trips the test split byte for byte (unseen pieces fall back to smaller ones or bytes)', () => {
    let differently = 0;
    for (const line of [...test, 'Zebra quokka ünïcødé 🦊 \t x']) {
      const ids = smaller.encode(line);
      expect(smaller.decodeText(ids)).toBe(original.decodeText(original.encode(line)));
      if (ids.length !== original.encode(line).length) differently++;
    }
    expect(smaller.decodeText(smaller.encode('Zebra quokka ünïcødé 🦊'))).toBe('Zebra quokka ünïcødé 🦊');
    expect(differently).toBeGreaterThan(0); // the test really used dropped tokens
  });

  it("gives the float model's logits restricted to the kept ids (reference forward pass)", () => {
    const a = new ReferenceModel(loaded.model);
    const b = new ReferenceModel(pruned.model);
    const ids = original.encode(train[3]);
    ids.forEach((id, pos) => {
      const full = a.forward(id, pos);
      const small = b.forward(pruned.newId[id], pos);
      const restricted = Array.from(pruned.keptIds, (k) => full[k]);
      for (let i = 0; i < restricted.length; i++) expect(Math.abs(small[i] - restricted[i])).toBeLessThanOrEqual(1e-5);
    });
  });

  describe('the C core', () => {
    let before: string;
    let after: string;

    beforeAll(async () => {
      before = await storiesBlob();
      after = path.join(tempDir('prune'), 'pruned.blob');
      writeFileSync(after, writeBlob(pruned.model, pruned.tokenizer, { groupSize: 64 }).blob);
    }, 120_000);

    it('runs the smaller blob with the same logits (restricted) and the same greedy tokens (mapped)', () => {
      expect(readFileSync(after).length).toBeLessThan(readFileSync(before).length);
      const ids = original.encode(train[5]);
      const full = coreLogits(before, ids, 512);
      const small = coreLogits(after, ids.map((id) => pruned.newId[id]), pruned.keptIds.length);
      full.forEach((row, pos) => expect(Array.from(small[pos])).toEqual(Array.from(pruned.keptIds, (k) => row[k])));
      const a = coreJson(before, ['-p', 'Once upon a time', '-n', '64']);
      const b = coreJson(after, ['-p', 'Once upon a time', '-n', '64']);
      expect(a.generated_tokens.every((id) => pruned.newId[id] >= 0)).toBe(true);
      expect(b.generated_tokens).toEqual(a.generated_tokens.map((id) => pruned.newId[id]));
      expect(b.text).toBe(a.text);
    });

    const toolchain = findQemuToolchain();
    it.runIf(toolchain.ok || process.env.CI)('runs it bit-identically on host and under QEMU lx106', async () => {
      const images = await buildXtensa(PROJECT_ROOT);
      const args = ['-p', 'Lily and Tom', '-n', '24', '--json'];
      const host = runCore(after, ['--arena', String(512 * 1024), ...args]);
      const qemu = await runOnQemu({ elf: images.elf, blob: after, args });
      expect(qemu.exitCode).toBe(0);
      expect(qemu.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
      const ids = ['--tokens', smaller.encode(train[0]).join(','), '--logits'];
      const hostLogits = runCore(after, ['--arena', String(512 * 1024), ...ids]).stdout;
      const qemuLogits = await runOnQemu({ elf: images.elf, blob: after, args: ids });
      expect(hostLogits.length).toBeGreaterThan(0);
      expect(qemuLogits.stdout.equals(hostLogits)).toBe(true);
    }, 300_000);
  });
});

describe('lmflash prune', () => {
  it('prunes a blob and prints the figures before and after', async () => {
    const dir = tempDir('prune-cli');
    const src = await storiesBlob();
    const textFile = path.join(dir, 'text.txt');
    writeFileSync(textFile, train.slice(0, 40).join('\n') + '\n');
    const out = path.join(dir, 'out.blob');
    const r = await cli('prune', src, '--vocab-from', textFile, '--eval-limit', '5', '-o', out, '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.after.vocabSize).toBeLessThan(rep.before.vocabSize);
    expect(rep.after.blobBytes).toBe(readFileSync(out).length);
    expect(rep.after.blobBytes).toBeLessThan(rep.before.blobBytes);
    expect(rep.after.parameters).toBeLessThan(rep.before.parameters);
    expect(rep.after.ramBytes).toBeLessThan(rep.before.ramBytes);
    // same encoding, softmax over fewer tokens: the perplexity cannot rise
    expect(rep.after.perplexity).toBeLessThanOrEqual(rep.before.perplexity * (1 + 1e-6));
    expect(rep.after.tokens).toBe(rep.before.tokens);
  }, 120_000);

  it('keeps an all-int4 blob int4: the kept embedding rows and every layer matrix byte for byte', async () => {
    const dir = tempDir('prune-q4');
    const src = path.join(dir, 'q4.blob');
    writeFileSync(src, (await convertCheckpoint(STORIES_MODEL, STORIES_TOKENIZER, { bits: 4, embeddingBits: 4 })).blob);
    const textFile = path.join(dir, 'text.txt');
    writeFileSync(textFile, train.slice(0, 40).join('\n') + '\n');
    const out = path.join(dir, 'out.blob');
    const r = await cli('prune', src, '--vocab-from', textFile, '--eval-limit', '5', '-o', out);
    expect(r.code, r.err).toBe(0);
    const before = readBlob(readFileSync(src));
    const after = readBlob(readFileSync(out));
    expect(after.versionMinor).toBe(1);
    expect(after.config.vocabSize).toBeLessThan(before.config.vocabSize);
    expect(after.tensors.filter((t) => t.dtype !== DTYPE_F32).every((t) => t.dtype === DTYPE_Q4)).toBe(true);
    const stored = (v: typeof before, name: string) => quantizedMatrices4(v).get(name)!;
    for (const t of before.tensors.filter((e) => e.dtype === DTYPE_Q4 && e.name !== 'token_embedding')) {
      expect(Buffer.from(stored(after, t.name).data).equals(Buffer.from(stored(before, t.name).data)), t.name).toBe(true);
    }
    // each kept token's row: the original row's nibbles and scales
    const { keptIds } = pruneVocabulary(blobToFloatModel(before), before.tokenizer, train.slice(0, 40));
    const e0 = stored(before, 'token_embedding');
    const e1 = stored(after, 'token_embedding');
    expect(e1.rows).toBe(keptIds.length);
    keptIds.forEach((id, row) => {
      const nibbles = (q: typeof e0, r: number) => Buffer.from(q.data.subarray(r * q.rowStride, (r + 1) * q.rowStride));
      expect(nibbles(e1, row).equals(nibbles(e0, id))).toBe(true);
      expect(e1.scales.subarray(row * e1.groupsPerRow, (row + 1) * e1.groupsPerRow)).toEqual(e0.scales.subarray(id * e0.groupsPerRow, (id + 1) * e0.groupsPerRow));
    });
  }, 120_000);

  it('refuses bad input clearly and writes nothing', async () => {
    const dir = tempDir('prune-bad');
    const out = path.join(dir, 'out.blob');
    const empty = path.join(dir, 'empty.txt');
    writeFileSync(empty, '\n\n');
    const junk = path.join(dir, 'junk.bin');
    writeFileSync(junk, Buffer.alloc(100, 7));
    const cases: [string[], RegExp][] = [
      [[STORIES_MODEL, '--vocab-from', empty, '-t', STORIES_TOKENIZER], /no non-empty lines/],
      [[STORIES_MODEL, '--vocab-from', STORIES_SAMPLES], /--tokenizer is required/],
      [[junk, '-t', STORIES_TOKENIZER, '--vocab-from', STORIES_SAMPLES], /junk\.bin/],
      [[STORIES_MODEL, '-t', STORIES_TOKENIZER, '--vocab-from', path.join(dir, 'missing.txt')], /missing\.txt/],
      [[STORIES_MODEL, '-t', STORIES_TOKENIZER, '--vocab-from', STORIES_SAMPLES, '--split', 'dev'], /--split must be/],
    ];
    for (const [args, message] of cases) {
      const r = await cli('prune', ...args, '-o', out);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(message);
    }
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['empty.txt', 'junk.bin']);
  }, 60_000);
});
