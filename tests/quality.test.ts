/**
 * The int8 blob against the float model it came from, on held-out text:
 * `lmflash eval` over the test split (line index % 10 == 0) of the samples
 * corpus, int8 logits from the C core, float logits from the TypeScript
 * reference (itself checked against run.c to 1e-4).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate, type EvalResult } from '../host/commands/eval.js';
import { storiesBlob } from './native-helpers.js';
import { STORIES_MODEL, STORIES_SAMPLES } from './paths.js';

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
