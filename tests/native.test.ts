/**
 * The C core on the host, driven through lmf-run: it reads what the
 * TypeScript writer writes, tokenizes exactly like llama2.c, stays close to
 * the float reference, and plans RAM as `inspect` says.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readBlob } from '../src/blob.js';
import { ramPlan } from '../src/memory-plan.js';
import { argmax } from '../src/reference.js';
import { coreJson, coreLogits, runCore, storiesBlob, tempDir } from './native-helpers.js';
import { STORIES_REFERENCE } from './paths.js';
import { readReferenceRun } from './reference-runs.js';
import { buildVectors } from './vectors.js';

let blob: string;

beforeAll(async () => {
  blob = await storiesBlob();
}, 120_000);


describe('C reader and tokenizer on the TypeScript test vectors', () => {
  const dir = tempDir('vectors');
  const vectors = buildVectors();

  it.each(vectors.map((v) => [v.name, v] as const))('%s: same prompt ids, logits close to the float run', (_name, v) => {
    const file = path.join(dir, `${v.name}.blob`);
    writeFileSync(file, v.blob);
    for (const e of v.encodings) {
      const hex = Buffer.from(e.input).toString('hex');
      expect(coreJson(file, ['--prompt-hex', hex, '-n', '0']).prompt_tokens).toEqual(e.ids);
    }
    // teacher-forced over the vector's greedy run: the int8 core picks the same token nearly always
    const V = v.model.config.vocabSize;
    const ids = [...v.prompt, ...v.generated].slice(0, v.steps);
    const rows = coreLogits(file, ids, V);
    expect(rows.length).toBe(v.steps);
    let agree = 0;
    rows.forEach((row, p) => {
      const ref = v.logits.subarray(p * V, (p + 1) * V);
      if (argmax(row) === argmax(ref)) agree++;
      for (let i = 0; i < V; i++) expect(Math.abs(row[i] - ref[i])).toBeLessThan(0.25);
    });
    expect(agree / rows.length).toBeGreaterThanOrEqual(0.9);
  });
});

describe('stories260K on the C core', () => {
  it('encodes every case of tokenize.tsv to run.c ids', () => {
    const lines = readFileSync(path.join(STORIES_REFERENCE, 'tokenize.tsv'), 'utf8').split('\n').filter((l) => l.length > 0);
    expect(lines.length).toBeGreaterThan(50);
    for (const line of lines) {
      const tab = line.lastIndexOf('\t');
      const input = line.slice(0, tab);
      const expected = line.slice(tab + 1).split(' ').map(Number);
      const got = coreJson(blob, ['--prompt-hex', Buffer.from(input, 'utf8').toString('hex'), '-n', '0']).prompt_tokens;
      expect(got, JSON.stringify(input)).toEqual(expected);
    }
  });

  // Along run.c's own greedy path; the 97 % criterion on held-out text is in tests/quality.test.ts.
  it.each(['once', 'park', 'empty'])('%s: teacher-forced int8 logits pick the reference token at >= 95%% of positions', (name) => {
    const ref = readReferenceRun(name);
    const steps = ref.logits.length / 512;
    const ids = [...ref.prompt, ...ref.generated].slice(0, steps);
    const rows = coreLogits(blob, ids, 512);
    let agree = 0;
    rows.forEach((row, p) => {
      if (argmax(row) === argmax(ref.logits.subarray(p * 512, (p + 1) * 512))) agree++;
    });
    expect(agree / steps).toBeGreaterThanOrEqual(0.95);
  });

  it('generates the same greedy tokens as the float reference for the first sentences', () => {
    const ref = readReferenceRun('once');
    const out = coreJson(blob, ['-p', 'Once upon a time', '-n', '40']);
    expect(out.prompt_tokens).toEqual(ref.prompt);
    // int8 drifts from float eventually; the opening must be the same story
    expect(out.generated_tokens.slice(0, 30)).toEqual(ref.generated.slice(0, 30));
    expect('Once upon a time' + out.text).toBe(readFileSync(path.join(STORIES_REFERENCE, 'once.text.txt'), 'utf8').slice(0, 16 + out.text.length));
  });

  it('is deterministic for a seed and different across seeds', () => {
    const a = coreJson(blob, ['-p', 'Lily', '-n', '40', '-t', '1', '-s', '7']);
    const b = coreJson(blob, ['-p', 'Lily', '-n', '40', '-t', '1', '-s', '7']);
    const c = coreJson(blob, ['-p', 'Lily', '-n', '40', '-t', '1', '-s', '8']);
    expect(a).toEqual(b);
    expect(c.generated_tokens).not.toEqual(a.generated_tokens);
  });

  it('needs the RAM that inspect reports, at every context', () => {
    const config = readBlob(readFileSync(blob)).config;
    for (const ctx of [1, 7, 64, 256, 512]) {
      const info = JSON.parse(runCore(blob, ['--info', '--ctx', String(ctx)]).stdout.toString('utf8'));
      expect(info.arena_bytes).toBe(ramPlan(config, ctx).totalBytes);
    }
  });

  it('runs in a board-sized arena and says what to do when the context does not fit', () => {
    const small = runCore(blob, ['-p', 'Hi', '-n', '5', '--ctx', '512', '--arena', '100000']);
    expect(small.status).not.toBe(0);
    expect(small.stderr).toMatch(/context 512 needs \d+ bytes of RAM but only \d+ are available: use a shorter context \(at most \d+\)/);
    const fits = runCore(blob, ['-p', 'Hi', '-n', '5', '--arena', '100000']);
    expect(fits.status).toBe(0);
    expect(fits.stderr).toMatch(/ctx=(\d+)/);
    expect(Number(/ctx=(\d+)/.exec(fits.stderr)![1])).toBeLessThan(512);
  });

  it('rejects damaged blobs with a message and a non-zero exit', () => {
    const bytes = readFileSync(blob);
    const dir = tempDir('damaged');
    const cases: [string, Buffer, RegExp][] = [
      ['truncated', bytes.subarray(0, 1000), /truncated/],
      ['flipped', Buffer.from(bytes).fill(7, 5000, 5001), /CRC mismatch/],
      ['not a blob', Buffer.from('hello world, this is not a model at all, just some text to fill 64 bytes'), /not an lmflash blob/],
    ];
    for (const [name, data, message] of cases) {
      const file = path.join(dir, `${name}.blob`);
      writeFileSync(file, data);
      const r = runCore(file, ['-p', 'x', '-n', '2']);
      expect(r.status, name).toBe(3);
      expect(r.stderr, name).toMatch(message);
    }
  });
});
