/**
 * `lmflash finetune` end to end on stories260K: the blob it writes keeps
 * every tensor it did not adapt byte for byte (the ones `convert` writes),
 * says how many parameters it trained, runs bit-identically on the host core
 * and under QEMU lx106, and bad input is refused with a clear error and no
 * file written.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findQemuToolchain } from '../host/qemu.js';
import { convertCheckpoint } from '../converter/convert.js';
import { DTYPE_F32, DTYPE_Q4, quantizedMatrices4, readBlob, type BlobView, type TensorEntry } from '../src/blob.js';
import { cli } from './cli-helpers.js';
import { storiesBlob, tempDir } from './native-helpers.js';
import { expectLx106MatchesHost } from './lx106-match.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';

const dir = tempDir('finetune');
const pairs = path.join(dir, 'pairs.jsonl');
const out = path.join(dir, 'tuned.blob');
let report: { trainableParameters: number; before: { loss: number }; after: { loss: number }; targets: string[] };

const opening = ['Once upon a time, there was a little girl named Lily. She liked to play.', 'Once upon a time, there was a boy named Tim. He had a red ball.', 'Once upon a time, there was a big dog named Max. He liked to run.'];
function pairLines(n: number): string {
  return Array.from({ length: n }, (_, i) => {
    const story = opening[i % 3];
    const name = /named ([A-Z][a-z]+)/.exec(story)![1];
    return JSON.stringify({ prompt: `${story} Q: Who is the story about? A:`, completion: ` ${name}` });
  }).join('\n') + '\n';
}

function tensorBytes(v: BlobView, t: TensorEntry): Buffer {
  const data = Buffer.from(v.bytes.subarray(t.dataOffset, t.dataOffset + t.rows * t.rowStride));
  if (!t.groupSize) return data;
  return Buffer.concat([data, Buffer.from(v.bytes.subarray(t.scaleOffset, t.scaleOffset + 4 * t.rows * Math.ceil(t.cols / t.groupSize)))]);
}

beforeAll(async () => {
  writeFileSync(pairs, pairLines(30));
  const r = await cli('finetune', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--lora', '4', '--targets', 'wv,w1', '--data', pairs, '--steps', '8', '--eval-pairs', '2', '--json', '-o', out);
  expect(r.code, r.err).toBe(0);
  report = JSON.parse(r.out);
}, 120_000);

describe('lmflash finetune', () => {
  it('trains only the adapters of the targets and writes every other tensor exactly as convert does', async () => {
    // per layer: wv (32 x 64): A 4x64 + B 32x4; w1 (172 x 64): A 4x64 + B 172x4
    expect(report.trainableParameters).toBe(5 * (4 * 64 + 32 * 4 + 4 * 64 + 172 * 4));
    expect(report.targets).toEqual(['wv', 'w1']);
    expect(report.after.loss).toBeLessThan(report.before.loss);
    const base = readBlob(readFileSync(await storiesBlob()));
    const tuned = readBlob(readFileSync(out));
    expect(tuned.tensors.length).toBe(base.tensors.length);
    let changed = 0;
    for (const [i, t] of tuned.tensors.entries()) {
      const same = tensorBytes(tuned, t).equals(tensorBytes(base, base.tensors[i]));
      const adapted = /\.(wv|w1)$/.test(t.name);
      if (!adapted) expect(same, t.name).toBe(true);
      else if (!same) changed++;
    }
    expect(changed).toBe(10); // wv and w1 of all 5 layers
  });

  it('keeps an int4 blob int4: the matrices no adapter touched byte for byte, the adapted ones rounded again at 4 bits', async () => {
    const src = path.join(dir, 'q4.blob');
    writeFileSync(src, (await convertCheckpoint(STORIES_MODEL, STORIES_TOKENIZER, { bits: 4, embeddingBits: 4 })).blob);
    const tunedQ4 = path.join(dir, 'tuned-q4.blob');
    const r = await cli('finetune', src, '--lora', '4', '--targets', 'wv,w1', '--data', pairs, '--steps', '4', '--eval-pairs', '2', '-o', tunedQ4);
    expect(r.code, r.err).toBe(0);
    const before = readBlob(readFileSync(src));
    const after = readBlob(readFileSync(tunedQ4));
    expect(after.tensors.filter((t) => t.dtype !== DTYPE_F32).every((t) => t.dtype === DTYPE_Q4)).toBe(true);
    const q0 = quantizedMatrices4(before);
    const q1 = quantizedMatrices4(after);
    let changed = 0;
    for (const [name, m0] of q0) {
      const m1 = q1.get(name)!;
      const same = Buffer.from(m1.data).equals(Buffer.from(m0.data)) && Buffer.from(m1.scales.buffer, m1.scales.byteOffset, m1.scales.byteLength).equals(Buffer.from(m0.scales.buffer, m0.scales.byteOffset, m0.scales.byteLength));
      if (/\.(wv|w1)$/.test(name)) changed += same ? 0 : 1;
      else expect(same, name).toBe(true);
    }
    expect(changed).toBe(10);
    expect(readFileSync(tunedQ4).length).toBe(readFileSync(src).length);
  }, 120_000);

  const toolchain = findQemuToolchain();
  it.runIf(toolchain.ok || process.env.CI)('the fine-tuned blob runs bit-identically on the host core and under QEMU lx106', async () => {
    await expectLx106MatchesHost(out, '1,403,407,261,378,432,383,286,261,298;1,410,300,68', 14, 512, 'Once upon a time, there was a boy named Tim. He had a red ball. Q: Who is the story about? A:', 12);
  }, 600_000);

  const bad: [string, string[], RegExp, string?][] = [
    ['a file that is not JSON Lines', ['--lora', '4'], /line 2 of .* is not JSON/, '{"prompt": "a", "completion": " b"}\nthis is not json\n'],
    ['a pair without a completion', ['--lora', '4'], /line 1 of .* has no "completion"/, '{"prompt": "a"}\n'],
    ['a completion that is not a string', ['--lora', '4'], /"completion" is not a string/, '{"prompt": "a", "completion": 3}\n'],
    ['an empty pairs file', ['--lora', '4'], /is empty/, ''],
    ['only blank lines', ['--lora', '4'], /holds no pairs/, '\n\n'],
    ['rank 0', ['--lora', '0'], /rank must be a whole number from 1 to 32/],
    ['a negative rank', ['--lora', '-3'], /rank must be a whole number from 1 to 32/],
    ['a rank above the smallest targeted dimension', ['--lora', '33'], /from 1 to 32 \(the smallest dimension/],
    ['an unknown target', ['--lora', '4', '--targets', 'wq,wx'], /unknown projection "wx"/],
    ['a pair longer than the context', ['--lora', '4'], /line 3 of .* more than the model's context of 512/, pairLines(2) + JSON.stringify({ prompt: 'Once upon a time '.repeat(200), completion: ' x' }) + '\n'],
    ['too few pairs to hold any out', ['--lora', '4'], /held out are those on lines whose 0-based index % 10 == 0/, pairLines(1)],
    ['an --eval-text that does not exist', ['--lora', '4', '--eval-text', '/nonexistent/stories.txt'], /cannot read the --eval-text text .*no such file/],
    ['a missing tokenizer for a checkpoint', ['--lora', '4', '--no-tok'], /--tokenizer is required/],
  ];
  for (const [what, args, message, content] of bad) {
    it(`refuses ${what}, writing nothing`, async () => {
      const sub = tempDir('finetune-bad');
      const file = path.join(sub, 'pairs.jsonl');
      writeFileSync(file, content ?? pairLines(30));
      const target = path.join(sub, 'out.blob');
      const tok = args.includes('--no-tok') ? [] : ['-t', STORIES_TOKENIZER];
      const r = await cli('finetune', STORIES_MODEL, ...tok, ...args.filter((a) => a !== '--no-tok'), '--data', file, '--steps', '2', '-o', target);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(message);
      expect(existsSync(target)).toBe(false);
      expect(readdirSync(sub)).toEqual(['pairs.jsonl']);
    }, 60_000);
  }

  it('refuses an output folder that does not exist before any work', async () => {
    const r = await cli('finetune', STORIES_MODEL, '-t', STORIES_TOKENIZER, '--lora', '4', '--data', pairs, '-o', path.join(dir, 'no-such-dir', 'x.blob'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/folder .* does not exist/);
  });
});
