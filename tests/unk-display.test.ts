/**
 * `<unk>` in a vocabulary without byte fallback (as a character-level poem
 * model has): an unknown character encodes to one `<unk>`, not one per UTF-8
 * byte, in the C core and the TypeScript tokenizer alike; and `<unk>` shows
 * as U+FFFD in generate's text (native core and virtual board), while --json
 * keeps the raw bytes.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { closePort, openPort } from '../host/serial.js';
import { startSim } from '../host/sim.js';
import { writeBlob } from '../src/blob.js';
import { readTokenizerBin } from '../src/llama2c.js';
import { Tokenizer, tokenizerFromBin } from '../src/tokenizer.js';
import { cli } from './cli-helpers.js';
import { coreJson, tempDir } from './native-helpers.js';
import { tinyModelFor } from './tokenizer-train-helpers.js';

/** llama2.c tokenizer.bin bytes for these pieces (score 0 each). */
function tokenizerBin(pieces: string[]): Buffer {
  const parts = [Buffer.alloc(4)];
  parts[0].writeInt32LE(Math.max(...pieces.map((p) => Buffer.byteLength(p))));
  for (const p of pieces) {
    const head = Buffer.alloc(8);
    head.writeFloatLE(0, 0);
    head.writeInt32LE(Buffer.byteLength(p), 4);
    parts.push(head, Buffer.from(p, 'utf8'));
  }
  return Buffer.concat(parts);
}

// a character vocabulary with no <0xXX> pieces at all
const PIECES = ['<unk>', '\n<s>\n', '\n</s>\n', ' ', 'a', 'b', '月', '光'];
let tok: Tokenizer;
let blob: string;

beforeAll(() => {
  const data = tokenizerFromBin(readTokenizerBin(tokenizerBin(PIECES), PIECES.length));
  tok = new Tokenizer(data);
  blob = path.join(tempDir('unk'), 'char-no-fallback.blob');
  writeFileSync(blob, writeBlob(tinyModelFor(PIECES.length), data).blob);
});

describe('an unknown character without byte fallback', () => {
  it('is one <unk> per character, in the C core and in TypeScript', () => {
    const text = 'a€b月🐱光é';
    // BOS, the dummy-prefix space, a, <unk> (€: 3 bytes), b, 月, <unk> (🐱: 4 bytes), 光, <unk> (é: 2 bytes)
    const expected = [1, 3, 4, 0, 5, 6, 0, 7, 0];
    expect(tok.encode(text)).toEqual(expected);
    expect(coreJson(blob, ['-p', text, '-n', '1']).prompt_tokens).toEqual(expected);
  });
});

describe('<unk> in displayed text', () => {
  // every id but <unk> banned: the model can only say <unk>
  const onlyUnk = ['-p', 'a', '-n', '5', '-t', '0', '--ban', '1,2,3,4,5,6,7', '--no-echo'];

  it('shows as U+FFFD on the native core and on the virtual board; --json keeps the raw bytes', async () => {
    const native = await cli('generate', '-m', blob, ...onlyUnk);
    const viaSim = await cli('generate', '--sim', '-m', blob, ...onlyUnk);
    for (const r of [native, viaSim]) {
      expect(r.code).toBe(0);
      expect(r.out).toBe('\uFFFD'.repeat(5));
    }
    for (const where of [['-m', blob], ['--sim', '-m', blob]]) {
      const j = JSON.parse((await cli('generate', ...where, ...onlyUnk, '--json')).out);
      expect(j.generated_tokens).toEqual([0, 0, 0, 0, 0]);
      expect(j.text).toBe('');
    }
  });
});

describe('<unk> on the console', () => {
  it('the board prints U+FFFD for it', async () => {
    const s = await startSim({ model: blob });
    const port = await openPort(s.path);
    let text = '';
    port.on('data', (c: Buffer) => (text += c.toString('utf8')));
    try {
      port.write('/temp 0\r/max 4\r/ban 1,2,3,4,5,6,7\r');
      await new Promise((r) => setTimeout(r, 200));
      text = '';
      port.write('a\r');
      const t0 = Date.now();
      while (!/\[4 tokens/.test(text) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      expect(text).toContain('a\r\n' + '\uFFFD'.repeat(4) + '\r\n[4 tokens');
    } finally {
      await closePort(port);
      await s.stop();
    }
  });
});
