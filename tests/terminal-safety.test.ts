/**
 * Token bytes never reach the terminal as escape sequences: a tiny model
 * whose only tokens are ESC sequences (window title, clear screen, colour)
 * and a BEL, run by generate (native core and virtual board) and chat.
 * The text keeps newline and tab and what is printable; --json keeps the raw bytes.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeBlob } from '../src/blob.js';
import { readTokenizerBin } from '../src/llama2c.js';
import { tokenizerFromBin } from '../src/tokenizer.js';
import { stripControls } from '../host/terminal-text.js';
import { cli } from './cli-helpers.js';
import { coreJson, tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';
import { tinyModelFor } from './tokenizer-train-helpers.js';

const ESCAPES = ['\x1b]0;pwned\x07', '\x1b[2J\x1b[H', '\x1b[31mred\t', '\x9b1mC1\n', 'ok\r\x7f'];
const PIECES = ['<unk>', '\n<s>\n', '\n</s>\n', ' ', 'a', ...ESCAPES];
const BAN = '0,1,2,3,4'; // only the escape tokens are left to sample
let blob: string;

function tokenizerBin(pieces: string[]): Buffer {
  const parts = [Buffer.alloc(4)];
  parts[0].writeInt32LE(Math.max(...pieces.map((p) => Buffer.byteLength(p))));
  for (const p of pieces) {
    const head = Buffer.alloc(8);
    head.writeInt32LE(Buffer.byteLength(p), 4);
    parts.push(head, Buffer.from(p, 'utf8'));
  }
  return Buffer.concat(parts);
}

beforeAll(() => {
  const data = tokenizerFromBin(readTokenizerBin(tokenizerBin(PIECES), PIECES.length));
  blob = path.join(tempDir('esc'), 'escapes.blob');
  writeFileSync(blob, writeBlob(tinyModelFor(PIECES.length, 5), data).blob);
});

const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

describe('escape sequences from a model', () => {
  const args = ['-p', 'a', '-n', '24', '-t', '1', '-s', '3', '--ban', BAN, '--no-echo'];

  it('generate (native and --sim) prints them without their control characters; --json keeps them', async () => {
    const core = coreJson(blob, ['-p', 'a', '-n', '24', '-t', '1', '-s', '3', '--ban', BAN]);
    expect(core.text).toMatch(/\x1b/); // the model does emit escapes
    expect(new Set(core.generated_tokens).size).toBeGreaterThan(2);
    for (const where of [['-m', blob], ['--sim', '-m', blob]]) {
      const r = await cli('generate', ...where, ...args);
      expect(r.code).toBe(0);
      expect(r.out).not.toMatch(CONTROL);
      expect(r.out).toBe(stripControls(core.text));
      expect(r.out).toMatch(/pwned|red|C1|ok/); // what is printable stays
      if (core.text.includes('\n')) expect(r.out).toContain('\n'); // newline and tab stay
      const j = JSON.parse((await cli('generate', ...where, ...args, '--json')).out);
      expect(j.text).toBe(core.text); // raw
    }
  });

  it('chat prints them without their control characters', async () => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/lmflash.js'), 'chat', '--sim', '-m', blob, '-n', '24', '-t', '1', '-s', '3', '--ban', BAN], {
      stdio: 'pipe',
      env: { ...process.env, LMFLASH_HISTORY: '/dev/null' },
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exit = new Promise((r) => child.on('exit', r));
    child.stdin.end('a\n/quit\n');
    expect(await exit).toBe(0);
    const core = coreJson(blob, ['-p', 'a', '-n', '24', '-t', '1', '-s', '3', '--ban', BAN]);
    expect(out).not.toMatch(CONTROL);
    expect(out.replace(/\n$/, '')).toBe(stripControls(core.text).replace(/\n$/, ''));
  });
});
