/**
 * Values the int8 activation quantizer must survive: a group whose largest
 * value is tiny but not zero (1e-38 norm weights make every activation after
 * the norm ~1e-38, where 127/max overflows a float). Under ASan/UBSan, on the
 * native core and on the virtual board over a real pseudo-terminal.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { convertFloatModel } from '../converter/convert.js';
import { BoardClient } from '../host/board-client.js';
import { collectReply, generateParams } from '../host/commands/generate.js';
import { closePort, openPort } from '../host/serial.js';
import { readLlama2cCheckpoint, readTokenizerBin } from '../src/llama2c.js';
import { tokenizerFromBin } from '../src/tokenizer.js';
import { ASAN_DIR, runCore, tempDir } from './native-helpers.js';
import { STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';

const ENV = { ...process.env, ASAN_OPTIONS: 'abort_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1' };
let blob: string;

beforeAll(() => {
  const ckpt = readLlama2cCheckpoint(readFileSync(STORIES_MODEL));
  const tokenizer = tokenizerFromBin(readTokenizerBin(readFileSync(STORIES_TOKENIZER), ckpt.config.vocabSize));
  for (const layer of ckpt.weights.layers) {
    layer.attnNorm.fill(1e-38);
    layer.ffnNorm.fill(1e-38);
  }
  ckpt.weights.finalNorm.fill(1e-38);
  blob = path.join(tempDir('tiny'), 'tiny-norms.blob');
  writeFileSync(blob, convertFloatModel(ckpt, tokenizer, ckpt.format).blob);
});

describe('a model whose norm weights are 1e-38', () => {
  it('generates on the sanitized native core without a sanitizer report', () => {
    const r = runCore(blob, ['-p', 'Once upon a time', '-n', '8', '--json'], path.join(ASAN_DIR, 'lmf-run'));
    expect(r.stderr).not.toMatch(/Sanitizer|runtime error/);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.toString()).generated_tokens.length).toBeGreaterThan(0);
  });

  it('generates on the sanitized virtual board without a sanitizer report', async () => {
    const sim = spawn(path.join(ASAN_DIR, 'lmf-sim'), [blob, '--ctx', '64'], { stdio: ['ignore', 'pipe', 'pipe'], env: ENV });
    let err = '';
    sim.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise((r) => sim.once('exit', r));
    try {
      const pty = await new Promise<string>((resolve, reject) => {
        sim.stdout.on('data', (c: Buffer) => {
          const m = /serving on (\S+)/.exec(c.toString());
          if (m) resolve(m[1]);
        });
        sim.once('exit', (code) => reject(new Error(`lmf-sim exited (${code}): ${err}`)));
      });
      const port = await openPort(pty);
      const client = new BoardClient(port, { name: pty, closeStream: () => closePort(port) });
      await client.connect();
      const reply = await collectReply(client.generate('Once upon a time', generateParams({ temp: 0, topK: 0, topP: 0.9, repeatPenalty: 1, seed: 1 }, 8)), () => {});
      expect(reply.stats.generatedTokens).toBeGreaterThan(0);
      await client.close();
    } finally {
      sim.kill('SIGTERM');
      await exited;
    }
    expect(err).not.toMatch(/Sanitizer|runtime error/);
  }, 60_000);
});
