/**
 * The int8 blob against the float model it came from, on held-out text:
 * `lmflash eval` over the test split (line index % 10 == 0) of the samples
 * corpus, int8 logits from the C core, float logits from the TypeScript
 * reference (itself checked against run.c to 1e-4). The same for int4.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate, type EvalResult } from '../host/commands/eval.js';
import path from 'node:path';
import { cli } from './cli-helpers.js';
import { storiesBlob, tempDir } from './native-helpers.js';
import { STORIES_MODEL, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

describe('stories260K int8 blob quality (group size 64)', () => {
  let blob: string;
  let r: EvalResult;

  beforeAll(async () => {
      blob = await storiesBlob(64);
    r = await evaluate(blob, STORIES_SAMPLES, { reference: STORIES_MODEL, split: 'test' });
  }, 600_000);

  it('fits in 320 KB', () => {
    expect(readFileSync(blob).length).toBeLessThanOrEqual(320_000);
  });

  it('evaluates the whole test split', () => {
    const testLines = readFileSync(STORIES_SAMPLES, 'utf8').split('\n').filter((l, i) => l.length > 0 && i % 10 === 0);
    expect(r.documents).toBe(testLines.length);
    expect(r.tokens).toBeGreaterThan(30_000);
  });

  it('stays within KL 0.01 nats/token, 97 % top-1 agreement and 1 % perplexity of float', () => {
    const f = r.reference!;
    expect(f.meanKl).toBeLessThanOrEqual(0.01);
    expect(f.top1Agreement).toBeGreaterThanOrEqual(0.97);
    expect(Math.abs(f.perplexityRatio - 1)).toBeLessThanOrEqual(0.01);
  });
});

describe('stories260K int4 blob quality (int4 layers calibrated on 4096 train-split tokens, int8 embedding, group size 64: the smallest calibrated blob)', () => {
  let blob: string;
  let r: EvalResult;

  beforeAll(async () => {
    blob = path.join(tempDir('int4-quality'), 'stories260K-q4-cal.blob');
    const c = await cli(
      'convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', blob,
      '--bits', '4', '-g', '64', '--calibrate', STORIES_SAMPLES, '--calibrate-tokens', '4096',
    );
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/int4 calibrated on 4096 tokens/);
    r = await evaluate(blob, STORIES_SAMPLES, { reference: STORIES_MODEL, split: 'test' });
  }, 600_000);

  it('takes at most 65 % of the int8 blob', async () => {
    expect(readFileSync(blob).length).toBeLessThanOrEqual(0.65 * readFileSync(await storiesBlob(64)).length);
  });

  // measured: KL 0.0689 nats/token, top-1 88.0 %, perplexity 1.0856 × float (docs/blob-format.md);
  // before layer-by-layer calibration, AWQ scaling and scale refits: KL 0.079, top-1 86.7 %, 1.089
  it('stays within KL 0.075 nats/token, 87 % top-1 agreement and 9 % perplexity of float', () => {
    const f = r.reference!;
    expect(r.tokens).toBeGreaterThan(30_000);
    expect(f.meanKl).toBeLessThanOrEqual(0.075);
    expect(f.top1Agreement).toBeGreaterThanOrEqual(0.87);
    expect(Math.abs(f.perplexityRatio - 1)).toBeLessThanOrEqual(0.09);
  });

});

// Issue 13's bar, met by calibrated int4's defaults (group 16, 16,384 train-split tokens). Slow (the conversion
// calibrates 5 layers on 16,384 tokens, about 2 minutes on one core): measured perplexity 1.0466 × float,
// KL 0.0420 nats/token, top-1 90.3 % (docs/blob-format.md).
describe('stories260K int4 blob quality (convert --bits 4 --calibrate: its defaults, group size 16 on 16,384 train-split tokens)', () => {
  let blob: string;
  let r: EvalResult;

  beforeAll(async () => {
    blob = path.join(tempDir('int4-quality'), 'stories260K-q4-g16-cal.blob');
    const c = await cli('convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', blob, '--bits', '4', '--calibrate', STORIES_SAMPLES);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/int4 calibrated on 16384 tokens\), group size 16 \(the default of calibrated int4\)/);
    expect(c.out).not.toMatch(/trades quality for size/);
    r = await evaluate(blob, STORIES_SAMPLES, { reference: STORIES_MODEL, split: 'test' });
  }, 900_000);

  it('meets the bar of perplexity within 5 % of float, closer to float than group 64 (KL 0.045, 89 % top-1)', () => {
    const f = r.reference!;
    expect(r.tokens).toBeGreaterThan(30_000);
    expect(Math.abs(f.perplexityRatio - 1)).toBeLessThanOrEqual(0.05);
    expect(f.meanKl).toBeLessThanOrEqual(0.045);
    expect(f.top1Agreement).toBeGreaterThanOrEqual(0.89);
  });

  it('takes at most 80 % of the int8 blob', async () => {
    expect(readFileSync(blob).length).toBeLessThanOrEqual(0.8 * readFileSync(await storiesBlob(64)).length);
  });
});
