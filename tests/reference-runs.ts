/** The run.c reference runs in ../shared/reference/stories260K (tokens and float logits per position). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { STORIES_REFERENCE } from './paths.js';

export interface ReferenceRun {
  prompt: number[];
  generated: number[];
  /** Input token at every position (prompt, then greedy tokens), as many as logits rows. */
  inputs: number[];
  logits: Float32Array;
}

/** One run.c reference run (see ../shared/reference/stories260K/README.md). */
export function readReferenceRun(name: string, vocab = 512): ReferenceRun {
  const lines = readFileSync(path.join(STORIES_REFERENCE, `${name}.tokens.txt`), 'utf8').trim().split('\n');
  const field = (prefix: string) => {
    const line = lines.find((l) => l.startsWith(prefix));
    if (!line) throw new Error(`${name}.tokens.txt has no ${prefix} line`);
    return line.slice(prefix.length).trim().split(/\s+/).filter(Boolean).map(Number);
  };
  const buf = readFileSync(path.join(STORIES_REFERENCE, `${name}.logits.f32`));
  const logits = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const prompt = field('prompt_tokens');
  const generated = field('generated_tokens');
  const steps = logits.length / vocab;
  return { prompt, generated, inputs: [...prompt, ...generated].slice(0, steps), logits };
}
