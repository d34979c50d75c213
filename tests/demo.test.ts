/**
 * The default demo: stories the project writes itself, a model built from
 * them reproducibly, and a chat with it on the virtual board.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { filesDigest } from '../converter/demo/code-digest.js';
import { demoCorpus } from '../converter/demo/stories.js';
import { buildDemoTransformer, demoTransformerSpec } from '../converter/demo/transformer.js';
import { loadWasmKernels } from '../converter/train/wasm-kernels.js';
import { buildDemoModel } from '../host/commands/demo.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const CLI = path.join(PROJECT_ROOT, 'bin/lmflash.js');

describe('demo corpus', () => {
  it('is the same for a seed, different across seeds, and made of whole stories', () => {
    const a = demoCorpus(200, 7);
    expect(demoCorpus(200, 7)).toBe(a);
    expect(demoCorpus(200, 8)).not.toBe(a);
    const lines = a.trim().split('\n');
    expect(lines).toHaveLength(200);
    for (const line of lines) {
      expect(line).toMatch(/^(Once upon a time|One morning|Long ago|One bright day), there was a little \w+ named \w+\./);
      expect(line).toMatch(/Together they were able to [a-z ]+\./);
    }
    // the corpus varies: most stories are unique
    expect(new Set(lines).size).toBeGreaterThan(190);
  });
});

describe('demo transformer', () => {
  it('is trained byte for byte the same from the same seed, and differently from another', async () => {
    const kernels = loadWasmKernels();
    const a = await buildDemoTransformer(demoTransformerSpec(300, 3, 12), kernels);
    const b = await buildDemoTransformer(demoTransformerSpec(300, 3, 12), kernels);
    const c = await buildDemoTransformer(demoTransformerSpec(300, 4, 12), kernels);
    expect(b.blob.equals(a.blob)).toBe(true);
    expect(c.blob.equals(a.blob)).toBe(false);
    expect(a.blob.readUInt32LE(16)).toBe(1); // architecture 1: transformer
    expect(a.valLoss).toBeLessThan(Math.log(512)); // it learned from the uniform guess
  });

  it('`lmflash demo` trains it once, then reuses the cached blob, and tells a story with it', () => {
    const out = tempDir('demo-transformer');
    const args = [CLI, 'demo', '--out', out, '--stories', '300', '--steps', '12', '--no-chat'];
    const first = spawnSync('node', args, { encoding: 'utf8', timeout: 120_000 });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/then a transformer .* for 12 steps/);
    expect(first.stdout).toMatch(/^Once upon a time/);
    const second = spawnSync('node', args, { encoding: 'utf8', timeout: 120_000 });
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/using the transformer trained earlier/);
    expect(second.stdout).toBe(first.stdout);
  });
});

describe('demo cache key', () => {
  it("covers the code that makes the blob: a changed module or kernel file changes it, anything else does not", () => {
    const dir = tempDir('code-digest');
    mkdirSync(path.join(dir, 'train', 'wasm'), { recursive: true });
    writeFileSync(path.join(dir, 'trainer.js'), 'export const lr = 3e-3;\n');
    writeFileSync(path.join(dir, 'train', 'pass.js'), 'export const m = 1;\n');
    writeFileSync(path.join(dir, 'notes.txt'), 'not code\n');
    const kernels = path.join(dir, 'train', 'wasm', 'kernels.wasm');
    writeFileSync(kernels, Buffer.from([0, 97, 115, 109, 1]));
    const digest = () => filesDigest(dir, [dir], [kernels]);
    const before = digest();
    expect(digest()).toBe(before);
    writeFileSync(path.join(dir, 'notes.txt'), 'still not code\n');
    expect(digest()).toBe(before);
    writeFileSync(path.join(dir, 'train', 'pass.js'), 'export const m = 2;\n');
    const afterModule = digest();
    expect(afterModule).not.toBe(before);
    writeFileSync(kernels, Buffer.from([0, 97, 115, 109, 2]));
    expect(digest()).not.toBe(afterModule);
  });
});

describe('demo model (--ngram)', () => {
  it('is rebuilt byte for byte from the same seed', () => {
    const a = buildDemoModel(1500, 3);
    const b = buildDemoModel(1500, 3);
    expect(b.blob.equals(a.blob)).toBe(true);
    expect(a.blob.readUInt32LE(16)).toBe(2); // architecture 2: N-gram
  });

  it('`lmflash demo --ngram` builds it and chats with it on the virtual board', () => {
    const out = tempDir('demo');
    const r = spawnSync('node', [CLI, 'demo', '--ngram', '--out', out], { input: 'Once upon a time\n/quit\n', encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(path.join(out, 'demo-stories.txt'), 'utf8').split('\n').length).toBeGreaterThan(20_000);
    expect(r.stderr).toMatch(/connected to virtual board on \/dev\/pts\/\d+/);
    // the reply (stdout) continues the story in the corpus's own words; stats go to stderr
    expect(r.stdout).toMatch(/^, there was a little \w+ named \w+/);
    expect(r.stderr).toMatch(/\[\d+ tokens, first after \d+ ms/);
  });
});
