/**
 * Prompts that do not fit: the advice can be followed (no "raise --ctx" at
 * the model's maximum), nothing reaches stdout before the error (the prompt is
 * echoed only once the core or board accepted it), and --truncate-prompt keeps
 * BOS and the prompt's end. A word N-gram model with a 16-token context.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';

const dir = tempDir('prompt');
const BLOB = path.join(dir, 'words.blob');
const WORDS = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve'];
const LONG = Array.from({ length: 30 }, (_, i) => WORDS[i % WORDS.length]).join(' ');

beforeAll(async () => {
  const text = path.join(dir, 'count.txt');
  writeFileSync(text, Array.from({ length: 50 }, (_, i) => WORDS.slice(i % 5).join(' ')).join('\n') + '\n');
  const r = await cli('train', 'ngram', text, '--order', '3', '--context', '16', '-o', BLOB);
  expect(r.code, r.err).toBe(0);
});

describe('a prompt longer than the context', () => {
  it('at the model\'s maximum context: says so and offers --truncate-prompt, not --ctx, and prints nothing to stdout', async () => {
    const r = await cli('generate', '--model', BLOB, '-p', LONG, '-n', '4', '--seed', '1');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^lmflash: error: the prompt is 31 tokens, longer than the model's context of 16 tokens \(its maximum\): shorten it, or pass --truncate-prompt/m);
    expect(r.err).not.toMatch(/raise --ctx/);
    expect(r.out).toBe('');
  });

  it('below the maximum (--ctx 8): raising --ctx is advice that can be followed, with its limit', async () => {
    const r = await cli('generate', '--model', BLOB, '-p', WORDS.slice(0, 10).join(' '), '--ctx', '8', '-n', '2');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/longer than --ctx 8: raise --ctx \(the model allows up to 16\)/);
    expect(r.out).toBe('');
  });

  it('on the virtual board: the error comes with an empty stdout (no echoed prompt before it)', async () => {
    const r = await cli('generate', '--sim', '--model', BLOB, '-p', LONG, '-n', '4', '--seed', '1');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/does not fit the context of 16 tokens: shorten it/);
    expect(r.out).toBe('');
  });

  it('--truncate-prompt keeps BOS and the last tokens, leaving room for -n tokens', async () => {
    const tail = await cli('generate', '--model', BLOB, '-p', LONG.split(' ').slice(-3).join(' '), '-n', '1', '--json', '--seed', '1');
    expect(tail.code, tail.err).toBe(0);
    const [bos, ...last3] = JSON.parse(tail.out).prompt_tokens as number[];
    const r = await cli('generate', '--model', BLOB, '-p', LONG, '-n', '4', '--truncate-prompt', '--json', '--seed', '1');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.prompt_tokens).toHaveLength(12); // 16 - 4 for the reply
    expect(j.prompt_tokens[0]).toBe(bos);
    expect(j.prompt_tokens.slice(-3)).toEqual(last3);
    expect(j.stats.prompt_dropped).toBe(31 - 12);
    const text = await cli('generate', '--model', BLOB, '-p', LONG, '-n', '4', '--truncate-prompt', '--seed', '1');
    expect(text.code).toBe(0);
    expect(text.out.startsWith(LONG)).toBe(true);
    expect(text.err).toMatch(/--truncate-prompt dropped its first 19 tokens/);
  });

  it('over serial --truncate-prompt is refused with what to do', async () => {
    const r = await cli('generate', '--sim', '--model', BLOB, '-p', LONG, '--truncate-prompt');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--truncate-prompt works only on the native core/);
  });
});
