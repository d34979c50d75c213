/**
 * `lmflash train transformer` as a user runs it: bad input refused with a
 * clear error and nothing written; a real process stopped with SIGINT saves a
 * checkpoint that resumes exactly (same losses as the uninterrupted run) and
 * that the CLI continues from.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenizerFileBytes, trainVocabulary } from '../converter/tokenizer/train.js';
import { decodeCheckpoint } from '../converter/train/checkpoint.js';
import { openSession, runSession, splitDocuments } from '../converter/train/session.js';
import { loadWasmKernels } from '../converter/train/wasm-kernels.js';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT, STORIES_TOKENIZER } from './paths.js';
import { sampleText, storiesTokenizer } from './train-helpers.js';

const dir = tempDir('train-cli');
const text = path.join(dir, 'stories.txt');
writeFileSync(text, sampleText(120));
const tiny = ['--dim', '16', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--hidden', '40', '--seq', '32', '--batch', '2'];

function outputsIn(d: string): string[] {
  return readdirSync(d).filter((f) => f !== 'stories.txt' && !f.startsWith('other-tok'));
}

describe('bad input', () => {
  it('refuses to start without --tokenizer', async () => {
    const r = await cli('train', 'transformer', text, ...tiny, '--steps', '3', '-o', path.join(dir, 'a.blob'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/--tokenizer/);
    expect(outputsIn(dir)).toEqual([]);
  });

  it('names a missing tokenizer file', async () => {
    const r = await cli('train', 'transformer', text, '--tokenizer', path.join(dir, 'nope.bin'), ...tiny, '--steps', '3', '-o', path.join(dir, 'a.blob'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/nope\.bin/);
    expect(outputsIn(dir)).toEqual([]);
  });

  it.each([
    [['--dim', '30', '--heads', '4'], /dim 30 is not a multiple of n_heads 4/],
    [['--heads', '4', '--kv-heads', '3'], /n_heads 4 is not a multiple of n_kv_heads 3/],
    [['--dim', '12', '--heads', '4'], /head size 3 .* is odd/],
  ])('refuses the nonsense shape %j before training', async (shape, message) => {
    const args = [...tiny];
    for (let i = 0; i < shape.length; i += 2) args[args.indexOf(shape[i]) + 1] = shape[i + 1];
    const r = await cli('train', 'transformer', text, '--tokenizer', STORIES_TOKENIZER, ...args, '--steps', '3', '-o', path.join(dir, 'a.blob'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(message);
    expect(outputsIn(dir)).toEqual([]);
  });

  it('refuses --steps with --minutes, and neither', async () => {
    const both = await cli('train', 'transformer', text, '--tokenizer', STORIES_TOKENIZER, ...tiny, '--steps', '3', '--minutes', '1', '-o', path.join(dir, 'a.blob'));
    expect(both.err).toMatch(/--steps and --minutes are alternatives/);
    const neither = await cli('train', 'transformer', text, '--tokenizer', STORIES_TOKENIZER, ...tiny, '-o', path.join(dir, 'a.blob'));
    expect(neither.err).toMatch(/--steps N or --minutes M/);
    expect(outputsIn(dir)).toEqual([]);
  });

  it('refuses an output folder that does not exist before training', async () => {
    const r = await cli('train', 'transformer', text, '--tokenizer', STORIES_TOKENIZER, ...tiny, '--steps', '3', '-o', path.join(dir, 'missing', 'a.blob'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/folder .*missing does not exist/);
  });

  it('refuses to resume with a tokenizer of another vocabulary, and a file that is not a checkpoint', async () => {
    const sub = tempDir('train-cli-resume');
    const blob = path.join(sub, 'm.blob');
    const ok = await cli('train', 'transformer', text, '--tokenizer', STORIES_TOKENIZER, ...tiny, '--steps', '2', '-o', blob);
    expect(ok.code, ok.err).toBe(0);
    const lines = sampleText(120).split('\n').filter((l) => l);
    const otherTok = path.join(sub, 'other-tok.bin');
    writeFileSync(otherTok, tokenizerFileBytes(trainVocabulary(lines, { type: 'bpe', vocabSize: 300 })));
    const before = readFileSync(blob);
    const r = await cli('train', 'transformer', text, '--tokenizer', otherTok, '--resume', path.join(sub, 'm.ckpt'), '-o', blob);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/tokenizer has 300 tokens but the model's vocabulary is 512|another tokenizer/);
    expect(readFileSync(blob).equals(before)).toBe(true); // nothing replaced
    const notCkpt = await cli('train', 'transformer', text, '--tokenizer', STORIES_TOKENIZER, '--resume', blob, '-o', path.join(sub, 'n.blob'));
    expect(notCkpt.err).toMatch(/not a usable lmflash training checkpoint/);
    expect(existsSync(path.join(sub, 'n.blob'))).toBe(false);
  });
});

/** Runs the real CLI; sends SIGINT once stderr matches `when`. */
function runAndInterrupt(args: string[], when: RegExp): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/lmflash.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let sent = false;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      if (!sent && when.test(err)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('Ctrl-C', () => {
  it('saves a checkpoint that resumes exactly, and the CLI continues from it', async () => {
    const sub = tempDir('train-sigint');
    const blob = path.join(sub, 'm.blob');
    const args = [text, '--tokenizer', STORIES_TOKENIZER, ...tiny, '--steps', '100000', '--eval-every', '5', '-o', blob];
    // the first validation (step 5) has been printed: the run is well under way
    const r = await runAndInterrupt(['train', 'transformer', ...args], /val \d/);
    expect(r.err).not.toMatch(/error|at .*\.js:\d+/i); // no stack trace
    expect(r.code).toBe(130);
    const m = /interrupted at step (\d+) of 100000/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    const stoppedAt = Number(m![1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(5);
    expect(existsSync(blob)).toBe(true); // the best weights so far, usable at once
    const ckptPath = path.join(sub, 'm.ckpt');
    const ckpt = decodeCheckpoint(readFileSync(ckptPath));
    expect(ckpt.state.step).toBe(stoppedAt);

    // the checkpoint continues exactly: same losses as a run that was never stopped
    const tokenizer = storiesTokenizer();
    const { train, test } = splitDocuments(sampleText(120));
    const setup = { config: ckpt.header.config, settings: ckpt.header.settings, tokenizer, trainDocs: train, testDocs: test, kernels: loadWasmKernels() };
    const resumed = openSession({ ...setup, resume: ckpt });
    let n = 0;
    await runSession(resumed, { shouldStop: () => ++n >= 3 });
    const whole = openSession(setup);
    let k = 0;
    await runSession(whole, { shouldStop: () => ++k >= stoppedAt + 3 });
    expect(resumed.trainer.state.log.map((e) => e.loss)).toEqual(whole.trainer.state.log.map((e) => e.loss));

    // and the CLI picks it up
    const again = await runAndInterrupt(['train', 'transformer', text, '--tokenizer', STORIES_TOKENIZER, '--resume', ckptPath, '-o', blob], /step +\d+\/\d+ \[/);
    expect(again.err).toMatch(new RegExp(`resuming at step ${stoppedAt}`));
    expect(again.code).toBe(130);
    expect(Number(/interrupted at step (\d+)/.exec(again.out)?.[1])).toBeGreaterThan(stoppedAt);
  }, 120_000);
});
