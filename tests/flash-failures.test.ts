/**
 * What `lmflash flash` does when things go wrong, against the flashable
 * virtual board with faults injected on its side of the line and in its
 * flash (lmf-sim --fault-*), and with broken inputs: each failure is
 * detected, reported in words that say what to do, and, where it can be
 * known in advance, refused before anything is written.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildEspImage } from '../host/esp-image.js';
import { firmwarePartitions, startFlashSim, writeFlashImage, writeSyntheticBuild, type FlashSim, type SyntheticBuild } from '../host/flash-sim.js';
import { findAppPartition, findModelPartition, parsePartitionCsv } from '../host/partition-table.js';
import { startSim } from '../host/sim.js';
import { storiesBlob, tempDir } from './native-helpers.js';
import { cli } from './cli-helpers.js';
import { writeBlob } from '../src/blob.js';
import { buildTokenizerData, PIECE_BYTE, PIECE_CONTROL, PIECE_TEXT, TOKENIZER_FLAG_DUMMY_PREFIX } from '../src/tokenizer.js';
import { TINY_CONFIG, tinyModel } from './vectors.js';
import { trainNgram } from '../converter/ngram/train.js';
import { SHARED } from './paths.js';

let blob: string;
let build: SyntheticBuild;
let dir: string;
const sims: FlashSim[] = [];


const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** A board with the firmware already on it (no model) and these lmf-sim options. */
async function board(name: string, args: string[] = [], b: SyntheticBuild = build, model?: Uint8Array): Promise<{ sim: FlashSim; image: string }> {
  const image = path.join(dir, `${name}.bin`);
  writeFlashImage(image, 4 << 20, b, model);
  const sim = await startFlashSim({ image, args });
  sims.push(sim);
  return { sim, image };
}

beforeAll(async () => {
  blob = await storiesBlob();
  dir = tempDir('flash-failures');
  build = writeSyntheticBuild(path.join(dir, 'build'));
});

afterEach(async () => {
  while (sims.length) await sims.pop()!.stop();
});

describe('inputs refused before anything is written', () => {
  it('explains a folder without flasher_args.json', async () => {
    const notBuild = path.join(dir, 'not-a-build');
    writeSyntheticBuild(notBuild);
    rmSync(path.join(notBuild, 'flasher_args.json'));
    const r = await cli('flash', '--port', '/dev/null', '--firmware', notBuild);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/has no flasher_args\.json, so it is not an ESP-IDF build folder .*idf\.py build.*--firmware firmware\/esp32s3\/build/);
  });

  it('refuses an app image with a bad checksum, a bad SHA-256 or another chip id', async () => {
    for (const [damage, message] of [
      [(b: Buffer) => (b[100] ^= 1), /fails its checksum/],
      [(b: Buffer) => (b[b.length - 1] ^= 1), /fails its SHA-256 check/],
      [(b: Buffer) => b.writeUInt16LE(0, 12), /chip id 0, not the ESP32-S3/],
    ] as const) {
      const bad = path.join(dir, `bad-app-${Math.random().toString(36).slice(2)}`);
      writeSyntheticBuild(bad);
      const app = readFileSync(path.join(bad, 'lmflash.bin'));
      damage(app);
      writeFileSync(path.join(bad, 'lmflash.bin'), app);
      const r = await cli('flash', '--port', '/dev/null', '--firmware', bad);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(message);
    }
  });

  it('refuses a blob larger than the model partition, from the build folder and from the board, without writing', async () => {
    const small = parsePartitionCsv('nvs, data, nvs, 0x9000, 0x6000\nphy_init, data, phy, 0xf000, 0x1000\nfactory, app, factory, 0x10000, 0x100000\nmodel, 0x40, 0x00, 0x110000, 0x40000\n');
    const smallBuild = writeSyntheticBuild(path.join(dir, 'small-build'), { partitions: small });
    const { sim, image } = await board('small', [], smallBuild);
    const before = md5(readFileSync(image));
    const r1 = await cli('flash', '--port', sim.path, '--firmware', smallBuild.dir, '--model', blob);
    expect(r1.code).toBe(1);
    expect(r1.err).toMatch(/is 289,312 bytes but the `model` partition holds 258,048 \(262,144 less the 4 KiB commit journal\): nothing was written/);
    expect(r1.err).not.toMatch(/connecting/); // refused before the board was even reset
    const r2 = await cli('flash', '--port', sim.path, '--model', blob); // the table comes from the board
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/connected: ESP32-S3/);
    expect(r2.err).toMatch(/holds 258,048 .*nothing was written/);
    expect(md5(readFileSync(image))).toBe(before);
  });

  it('refuses a corrupt blob', async () => {
    const bad = path.join(dir, 'bad.blob');
    const b = readFileSync(blob);
    b[b.length - 10] ^= 0xff;
    writeFileSync(bad, b);
    const r = await cli('flash', '--port', '/dev/null', '--model', bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/fails its checks \(blob CRC mismatch.*nothing was written/);
  });

  it('refuses a model the detected board has no RAM for, before writing', async () => {
    // 40,000 tokens: 1.5 MB fits the 4 MB layout's model partition, but the sampler and logits alone
    // need ~480 KB of RAM, and the virtual board reads as an ESP32-S3 without PSRAM in its package
    const vocab = 40_000;
    const pieces = Array.from({ length: vocab - 259 }, (_, i) => `w${i}`);
    const wide = path.join(dir, 'wide.blob');
    writeFileSync(wide, wideVocabularyBlob(pieces));
    const { sim, image } = await board('wide');
    const before = md5(readFileSync(image));
    const r = await cli('flash', '--port', sim.path, '--model', wide);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot run on this board \(looks like s3-n4: .*no PSRAM.*\): the model needs [\d.]+ KiB of RAM even for a context of 1 token.*nothing was written/);
    expect(md5(readFileSync(image))).toBe(before);
  });

  it('refuses an N-gram whose vocabulary the detected board has no RAM for, before writing', async () => {
    // the KJV's words as they stand, unigrams only: 0.3 MB of flash, but logits and sampler need ~340 KiB of RAM
    const lines = readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').filter(Boolean);
    const wideNgram = path.join(dir, 'wide-ngram.blob');
    writeFileSync(wideNgram, trainNgram(lines, { order: 1 }).blob);
    const { sim, image } = await board('wide-ngram');
    const before = md5(readFileSync(image));
    const r = await cli('flash', '--port', sim.path, '--model', wideNgram);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot run on this board \(looks like s3-n4: .*\): the model needs 338\.\d KiB of RAM even for a context of 1 token.*use a board with PSRAM .*nothing was written/);
    expect(md5(readFileSync(image))).toBe(before);
  });

  it('refuses a firmware whose partition table is for a bigger flash than the board has', async () => {
    const big = writeSyntheticBuild(path.join(dir, 'build-16mb'), { partitions: firmwarePartitions('16MB'), flashSize: '16MB' });
    const { sim, image } = await board('for-16mb');
    const before = md5(readFileSync(image));
    const r = await cli('flash', '--port', sim.path, '--firmware', big.dir);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/partition `model` ends at 0x1000000 but this board has 4MB of flash: build the firmware with the partitions-\*\.csv for 4MB/);
    expect(md5(readFileSync(image))).toBe(before);
  });
});

describe('faults on the line and in the flash', () => {
  it('reports a block damaged on the line, sends it again and finishes', async () => {
    const { sim, image } = await board('one-bad-block', ['--fault-line-corrupt', '4']);
    const r = await cli('flash', '--port', sim.path, '--model', blob, '--baud', '921600');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/block \d+ of the model was rejected by the board \(checksum error: the data was damaged on the way\): sending it again/);
    expect(r.out).toMatch(/1 damaged block\(s\) were sent again/);
    const part = findModelPartition(build.partitions);
    const model = readFileSync(blob);
    expect(md5(readFileSync(image).subarray(part.offset, part.offset + model.length))).toBe(md5(model));
  });

  it('gives up on a line that damages every block, and says what to try', async () => {
    const { sim } = await board('bad-line', ['--fault-line-corrupt-all']);
    const r = await cli('flash', '--port', sim.path, '--model', blob);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the board rejected block 0 three times \(checksum error: the data was damaged on the way\): the line is unreliable: try a lower --baud/);
  });

  it('detects by MD5 a flash cell that does not keep what was written', async () => {
    const model = readFileSync(blob);
    const part = findModelPartition(build.partitions);
    const at = model.findIndex((b, i) => i > 1000 && (b & 1) === 0); // a byte whose bit 0 must be programmed
    const { sim } = await board('worn-flash', ['--fault-flash-stuck', String(part.offset + at)]);
    const r = await cli('flash', '--port', sim.path, '--model', blob);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/verification failed: the model at 0x110000 \(289312 bytes\) reads back with MD5 [0-9a-f]{32}, expected [0-9a-f]{32}: .*--erase-all/);
  });

  it('explains a port where no bootloader answers', async () => {
    const notFlashable = await startSim({ model: blob }); // the plain virtual board: no ROM loader behind it
    try {
      const r = await cli('flash', '--port', notFlashable.path, '--model', blob);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/no answer from the ESP32-S3 bootloader on .*hold BOOT, press and release RESET, release BOOT.*another USB cable.*lower --baud/);
    } finally {
      await notFlashable.stop();
    }
  }, 60_000);
});

describe('the board refuses to boot what it cannot trust', () => {
  it('stays in the bootloader with a corrupt app image, and says why', async () => {
    for (const [damage, message] of [
      [(b: Buffer, at: number) => (b[at + 200] ^= 0x04), /checksum failed/],
      [(b: Buffer, at: number) => (b[at + readFileSync(build.files[2].file).length - 3] ^= 0x04), /SHA-256 does not match/],
    ] as const) {
      const image = path.join(dir, `corrupt-app-${Math.random().toString(36).slice(2)}.bin`);
      const img = writeFlashImage(image, 4 << 20, build, readFileSync(blob));
      damage(img, findAppPartition(build.partitions)!.offset);
      writeFileSync(image, img);
      const sim = await startFlashSim({ image });
      sims.push(sim);
      expect(await sim.stderrWhen(/app partition `factory` is not bootable/)).toMatch(/app partition `factory` is not bootable/);
      expect(sim.stderr()).toMatch(message);
      const g = await cli('generate', '--port', sim.path, '-p', 'Hi', '-n', '3');
      expect(g.code).toBe(1);
      expect(g.err).toMatch(/no answer from a board/);
      await sims.pop()!.stop();
    }
  }, 60_000);

  it('also checks the bootloader image and an empty partition table', async () => {
    const image = path.join(dir, 'no-table.bin');
    const img = writeFlashImage(image, 4 << 20, build);
    img.fill(0xff, 0x8000, 0x9000);
    writeFileSync(image, img);
    const sim = await startFlashSim({ image });
    sims.push(sim);
    expect(await sim.stderrWhen(/no partition table at 0x8000/)).toMatch(/no partition table at 0x8000/);
    const image2 = path.join(dir, 'bad-boot.bin');
    const img2 = writeFlashImage(image2, 4 << 20, build);
    img2[0] = 0x00;
    writeFileSync(image2, img2);
    const sim2 = await startFlashSim({ image: image2 });
    sims.push(sim2);
    expect(await sim2.stderrWhen(/invalid header: 0x[0-9a-f]+ \(image at 0x0 has invalid magic byte/)).toMatch(/invalid header: 0x[0-9a-f]+ \(image at 0x0 has invalid magic byte/);
  });
});

// a synthetic image that is not the bootloader's business: keeps buildEspImage's other options honest
it('builds images the host checker accepts', () => {
  const img = buildEspImage({ entry: 0x40375000, segments: [{ address: 0x3fc90000, data: Buffer.alloc(16, 1) }], hashAppended: false });
  expect(img.length % 16).toBe(0);
});

/** A one-layer transformer with a large vocabulary (random weights; only its size matters here). */
function wideVocabularyBlob(words: string[]): Buffer {
  const control = ['<unk>', '<s>', '</s>'].map((n) => Buffer.from(n));
  const bytes = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  const pieces = [...control, ...bytes, ...words.map((w) => Buffer.from(w))];
  const V = pieces.length;
  const byteIds = new Uint32Array(256).map((_, b) => 3 + b);
  const tokenizer = buildTokenizerData({
    pieces,
    scores: pieces.map(() => 0),
    kinds: pieces.map((_, i) => (i < 3 ? PIECE_CONTROL : i < 259 ? PIECE_BYTE : PIECE_TEXT)),
    byteIds,
    bosId: 1,
    eosId: 2,
    unkId: 0,
    flags: TOKENIZER_FLAG_DUMMY_PREFIX,
  });
  const dim = 16;
  const config = { ...TINY_CONFIG, dim, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: V, seqLen: 64 };
  const model = tinyModel(1, { sharedClassifier: true, config });
  return writeBlob(model, tokenizer, { groupSize: 16 }).blob;
}
