/**
 * N-gram blobs wherever a transformer blob goes: `inspect --board` (flash,
 * RAM, fit, speed estimate), chat's `/info` on the virtual board, and a clear
 * refusal from `export onnx`.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { trainNgram } from '../converter/ngram/train.js';
import { checkModelFitsBoard, estimateNgramTokensPerSecond, findBoard, NGRAM_XTENSA_MEASURED, planNgramOnBoard } from '../src/boards.js';
import { ngramRamPlan, readNgramBlob, type NgramView } from '../src/ngram.js';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT, SHARED } from './paths.js';

const dir = tempDir('ngram-board');
const small = path.join(dir, 'kjv-small.blob');
const large = path.join(dir, 'kjv-large.blob');
let smallView: NgramView;
let largeView: NgramView;

beforeAll(() => {
  const raw = readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').filter(Boolean);
  const a = trainNgram(raw.slice(0, 2000).map(splitPunctuationLowercase), { order: 3 });
  const b = trainNgram(raw, { order: 2 }); // the words as they stand: a vocabulary of ~28 k
  writeFileSync(small, a.blob);
  writeFileSync(large, b.blob);
  smallView = readNgramBlob(a.blob);
  largeView = readNgramBlob(b.blob);
}, 60_000);

describe('inspect --board on N-gram blobs', () => {
  it('plans the arena from the N-gram RAM plan and estimates the speed from the documented cost model', () => {
    const n4 = planNgramOnBoard(smallView, findBoard('s3-n4'));
    const need = ngramRamPlan(smallView.config, smallView.config.seqLen);
    expect(n4.ram.place).toBe('internal');
    expect(n4.ram.plan).toEqual(need);
    expect(n4.flash.fits).toBe(true);
    // the estimate follows the vocabulary: the cost is per vocabulary entry (plus the unigrams from flash)
    const big = estimateNgramTokensPerSecond(largeView, findBoard('s3-n8r8'), 'psram');
    const little = estimateNgramTokensPerSecond(smallView, findBoard('s3-n8r8'), 'psram');
    expect(big.atStart).toBeLessThan(little.atStart);
    expect(big.computeMsAtStart / little.computeMsAtStart).toBeCloseTo(largeView.config.vocabSize / smallView.config.vocabSize, 5);
    expect(NGRAM_XTENSA_MEASURED.instructionsPerVocabEntry).toBeGreaterThan(NGRAM_XTENSA_MEASURED.softFloatInstructionsPerOp);
  });

  it('a vocabulary whose logits and sampler do not fit internal RAM needs PSRAM, and says so', () => {
    expect(ngramRamPlan(largeView.config, 1).totalBytes).toBeGreaterThan(planNgramOnBoard(largeView, findBoard('s3-n8')).ram.internalBudgetBytes);
    const problems = checkModelFitsBoard(largeView, findBoard('s3-n8'));
    expect(problems.map((p) => p.kind)).toEqual(['ram']);
    expect(problems[0].message).toMatch(/even for a context of 1 token.*use a board with PSRAM \(s3-n4r2, s3-n8r2, s3-n8r8, s3-n16r8\) or a smaller vocabulary/);
    expect(checkModelFitsBoard(largeView, findBoard('s3-n8r2'))).toEqual([]);
    expect(planNgramOnBoard(largeView, findBoard('s3-n8r2')).ram.place).toBe('psram');
  });

  it('lmflash inspect --board prints the plan for an N-gram blob (it used to refuse: "not yet")', async () => {
    const r = await cli('inspect', small, '--board', 's3-n4');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/3-gram language model/);
    expect(r.out).toMatch(/board s3-n4: ESP32-S3, 4 MB flash, no PSRAM/);
    expect(r.out).toMatch(/context 1024: [\d.]+ KiB in internal RAM/);
    expect(r.out).toMatch(/speed \(estimate, greedy\): \d+ tok\/s at any position \(compute [\d.]+ ms \+ unigrams from flash [\d.]+ ms at 20 MB\/s; \d+-\d+ tok\/s for 14-40 MB\/s\)/);
    expect(r.out).toMatch(/fits: yes/);
    const json = JSON.parse((await cli('inspect', large, '--board', 's3-n8', '--json')).out);
    expect(json.board.fits).toBe(false);
    expect(json.board.problems[0].kind).toBe('ram');
  });
});

describe('export onnx on an N-gram blob', () => {
  it('says ONNX export is for transformers and what to use instead (was: "update lmflash")', async () => {
    const r = await cli('export', 'onnx', small, '-o', path.join(dir, 'x.onnx'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/is an N-gram blob: ONNX export is for transformers.*--arpa FILE/);
    expect(r.err).not.toMatch(/update lmflash/);
  });
});

describe("chat's /info on an N-gram model", () => {
  it('names the order, the vocabulary and the n-grams of each order (was: "dim undefined, hidden undefined")', async () => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/lmflash.js'), 'chat', '--sim', '--model', small], {
      stdio: 'pipe',
      env: { ...process.env, LMFLASH_HISTORY: '/dev/null' },
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.stdout.resume();
    child.stdin.write('/info\n/quit\n');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const counts = smallView.levels.map((l, i) => `${l.count.toLocaleString('en-US')} ${i + 1}-grams`).join(', ');
    expect(err).toContain(`model: 3-gram language model, ${counts}, vocab ${smallView.config.vocabSize.toLocaleString('en-US')}`);
    expect(err).not.toMatch(/undefined/);
    expect(code).toBe(0);
  }, 60_000);
});
