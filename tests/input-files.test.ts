/**
 * Every command that reads a file checks it first (src/input-file.ts): a FIFO
 * or `<(cat file)` is refused at once instead of blocking forever, a folder is
 * named as one; and text inputs refuse binary or empty files instead of
 * training or scoring garbage with exit 0.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticBuild } from '../host/flash-sim.js';
import { cli } from './cli-helpers.js';
import { tempDir } from './native-helpers.js';

const dir = tempDir('input-files');
const at = (name: string) => path.join(dir, name);
const FIFO = at('pipe');
const FOLDER = at('folder');
const TEXT = at('text.txt');
const TOK = at('tok.bin');
const BLOB = at('model.blob');
const ONNX_FIFO = at('pipe.onnx');
const ONNX_FOLDER = at('folder.onnx');

/** Seeded noise: the same "binary file" every run. */
function noise(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 12345;
  for (let i = 0; i < n; i++) b[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return b;
}

beforeAll(async () => {
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'far', 'away', 'home'];
  const lines = Array.from({ length: 300 }, (_, i) => Array.from({ length: 8 }, (_, k) => words[(i * 7 + k * 5 + ((i * k) % 3)) % words.length]).join(' '));
  writeFileSync(TEXT, lines.join('\n') + '\n');
  mkdirSync(FOLDER);
  mkdirSync(ONNX_FOLDER);
  execFileSync('mkfifo', [FIFO, ONNX_FIFO]);
  expect((await cli('tokenizer', 'train', TEXT, '--type', 'char', '--vocab', '270', '-o', TOK)).code).toBe(0);
  expect((await cli('train', 'ngram', TEXT, '--order', '2', '-o', BLOB)).code).toBe(0);
});

/** Each file a command reads, with `F` where the file under test goes. */
const READERS: [string, (f: string) => string[]][] = [
  ['convert: checkpoint', (f) => ['convert', f, '--tokenizer', TOK, '-o', at('out.blob')]],
  ['convert: tokenizer', (f) => ['convert', TEXT, '--tokenizer', f, '-o', at('out.blob')]],
  ['convert: ONNX model', (f) => ['convert', f === FIFO ? ONNX_FIFO : ONNX_FOLDER, '-o', at('out.blob')]],
  ['inspect', (f) => ['inspect', f]],
  ['eval: model', (f) => ['eval', f, '--text', TEXT]],
  ['eval: --text', (f) => ['eval', BLOB, '--text', f]],
  ['export onnx: model', (f) => ['export', 'onnx', f, '-o', at('out.onnx')]],
  ['generate --model', (f) => ['generate', '--model', f, '-p', 'the']],
  ['generate --sim --model', (f) => ['generate', '--sim', '--model', f, '-p', 'the']],
  ['chat --sim --model', (f) => ['chat', '--sim', '--model', f]],
  ['sim --model', (f) => ['sim', '--model', f]],
  ['flash --model', (f) => ['flash', '--port', at('no-such-port'), '--model', f]],
  ['upload-model', (f) => ['upload-model', '--port', at('no-such-port'), f]],
  ['tokenizer train', (f) => ['tokenizer', 'train', f, '--type', 'char', '--vocab', '270', '-o', at('out.bin')]],
  ['train ngram: text', (f) => ['train', 'ngram', f, '--order', '2', '-o', at('out.blob')]],
  ['train ngram: --tokenizer', (f) => ['train', 'ngram', TEXT, '--order', '2', '--tokenizer', f, '-o', at('out.blob')]],
  ['prune: model', (f) => ['prune', f, '--vocab-from', TEXT, '-o', at('out.blob')]],
  ['distill: --teacher', (f) => ['distill', '--teacher', f, '--ngram', '--order', '2', '--text', TEXT, '-o', at('out.blob')]],
  ['data clean: --blocklist', (f) => ['data', 'clean', TEXT, '--blocklist', f, '-o', at('out.txt')]],
];

describe('a file-reading command given a pipe or a folder', () => {
  it.each(READERS)('%s: a FIFO is refused at once, naming it a pipe', async (_, argv) => {
    const r = await cli(...argv(FIFO));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^lmflash: error: cannot read .*: it is a pipe \(FIFO or <\(…\)\), not a regular file; save it to a file first/m);
    expect(r.out).toBe('');
  }, 5000);

  it.each(READERS)('%s: a folder is refused as a folder', async (_, argv) => {
    const r = await cli(...argv(FOLDER));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^lmflash: error: .*it is a folder/m);
  }, 5000);

  it('flash --firmware: an image the build folder lists that is a FIFO is refused', async () => {
    const build = writeSyntheticBuild(at('fifo-build'));
    const app = build.files.find((f) => f.name === 'app')!.file;
    rmSync(app);
    execFileSync('mkfifo', [app]);
    const r = await cli('flash', '--port', at('no-such-port'), '--firmware', build.dir);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot read .*lmflash\.bin: it is a pipe/);
  }, 5000);

  it('data clean reads a pipe as a stream, as it reads a file', async () => {
    const fifo = at('stream');
    execFileSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', TEXT, fifo]);
    const written = new Promise((r) => writer.once('exit', r));
    const piped = await cli('data', 'clean', fifo, '--no-dedup', '-o', at('piped.txt'));
    if (piped.code !== 0) writer.kill(); // it would wait for a reader forever
    expect(piped.code, piped.err).toBe(0);
    await written;
    expect((await cli('data', 'clean', TEXT, '--no-dedup', '-o', at('direct.txt'))).code).toBe(0);
    expect(readFileSync(at('piped.txt'), 'utf8')).toBe(readFileSync(at('direct.txt'), 'utf8'));
    expect(readFileSync(at('piped.txt'), 'utf8').split('\n')).toHaveLength(301);
  }, 10_000);

  it('data clean skips binary coming through a pipe, and so writes nothing', async () => {
    const fifo = at('binary-stream');
    execFileSync('mkfifo', [fifo]);
    const bin = at('stream.bin');
    writeFileSync(bin, Buffer.concat([Buffer.from('a first line of text\n'), noise(8192)]));
    const writer = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', bin, fifo]);
    const r = await cli('data', 'clean', fifo, '-o', at('bad-stream.txt'));
    writer.kill();
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/nothing left to write: .*skipped .*binary-stream \(binary: it has NUL bytes\)/);
  }, 10_000);

  it('no output was written by any of them', () => {
    expect(readdirSync(dir).filter((f) => f.startsWith('out') || f.startsWith('bad'))).toEqual([]);
  });
});

describe('text inputs that are not text', () => {
  const binary = at('random.bin');
  const empty = at('empty.txt');
  beforeAll(() => {
    writeFileSync(binary, noise(64 * 1024));
    writeFileSync(empty, '');
  });

  it.each([
    ['train ngram', (f: string) => ['train', 'ngram', f, '--order', '3', '-o', at('bad.blob')]],
    ['tokenizer train', (f: string) => ['tokenizer', 'train', f, '--vocab', '300', '-o', at('bad.bin')]],
    ['eval --text', (f: string) => ['eval', BLOB, '--text', f]],
  ])('%s refuses random binary and an empty file', async (_, argv) => {
    const bin = await cli(...argv(binary));
    expect(bin.code).toBe(1);
    expect(bin.err).toMatch(/random\.bin is not valid UTF-8 \(first bad byte/);
    expect(bin.out).toBe('');
    const none = await cli(...argv(empty));
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/empty\.txt is empty/);
    expect(existsSync(at('bad.blob')) || existsSync(at('bad.bin'))).toBe(false);
  });

  it('data clean refuses to write an empty corpus: only binary input, or every document removed', async () => {
    const onlyBinary = await cli('data', 'clean', binary, '-o', at('bad.txt'));
    expect(onlyBinary.code).toBe(1);
    expect(onlyBinary.err).toMatch(/nothing left to write: no documents were read; skipped .*random\.bin \(binary/);
    const allRemoved = await cli('data', 'clean', TEXT, '--min-words', '50', '-o', at('bad.txt'));
    expect(allRemoved.code).toBe(1);
    expect(allRemoved.err).toMatch(/nothing left to write: all 300 documents read were removed \(too-short 300/);
    expect(existsSync(at('bad.txt'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
