import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint } from '../src/llama2c.js';
import { generateGreedy, ReferenceModel } from '../src/reference.js';
import { STORIES_MODEL } from './paths.js';
import { readReferenceRun } from './reference-runs.js';


const model = readLlama2cCheckpoint(readFileSync(STORIES_MODEL));

describe('reference forward pass vs run.c', () => {
  for (const name of ['once', 'park', 'empty']) {
    it(`reproduces ${name}.logits.f32 and its greedy tokens`, () => {
      const ref = readReferenceRun(name);
      const vocab = model.config.vocabSize;
      const steps = ref.logits.length / vocab;
      const rm = new ReferenceModel(model);
      let worst = 0;
      let worstPos = -1;
      const generated = generateGreedy(rm, ref.prompt, steps, {
        onLogits: (pos, logits) => {
          for (let i = 0; i < vocab; i++) {
            const e = Math.abs(logits[i] - ref.logits[pos * vocab + i]);
            if (e > worst) {
              worst = e;
              worstPos = pos;
            }
          }
        },
      });
      expect(worst, `worst at position ${worstPos}`).toBeLessThanOrEqual(1e-4);
      expect(generated).toEqual(ref.generated);
    });
  }

  it('rejects tokens and positions outside the model', () => {
    const rm = new ReferenceModel(model, { maxPositions: 4 });
    expect(() => rm.forward(512, 0)).toThrow(/outside the vocabulary/);
    expect(() => rm.forward(1, 4)).toThrow(/outside the context/);
  });
});
