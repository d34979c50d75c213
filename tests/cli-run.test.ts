/** `lmflash inspect`, `generate` and `eval` as a person runs them (runCli, the real native core). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBlob } from '../src/blob.js';
import { ramPlan } from '../src/memory-plan.js';
import { coreJson, storiesBlob } from './native-helpers.js';
import { STORIES_MODEL, STORIES_SAMPLES } from './paths.js';
import { cli as run } from './cli-helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lmflash-cli-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let blob: string;
beforeAll(async () => {
  blob = await storiesBlob();
});


describe('lmflash inspect', () => {
  it('reports config, parameters, flash and RAM at full and chosen context', async () => {
    const r = await run('inspect', blob, '--context', '256', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    const config = readBlob(readFileSync(blob)).config;
    // the checkpoint's floats after its 28-byte header, less the two RoPE tables (seq_len x head_size/2 each)
    const checkpointFloats = (readFileSync(STORIES_MODEL).length - 28) / 4;
    expect(j.parameters).toBe(checkpointFloats - 2 * 512 * 4);
    expect(j.flashBytes).toBe(readFileSync(blob).length);
    expect(j.ram.fullContext.totalBytes).toBe(ramPlan(config, 512).totalBytes);
    expect(j.ram.atContext.totalBytes).toBe(ramPlan(config, 256).totalBytes);
    const text = await run('inspect', blob, '--context', '256');
    expect(text.out).toMatch(/RAM at context 512: [\d,]+ bytes/);
    expect(text.out).toMatch(/RAM at context 256: [\d,]+ bytes/);
  });

  it('explains a corrupt or missing file', async () => {
    const bad = path.join(dir, 'bad.blob');
    const bytes = Buffer.from(readFileSync(blob));
    bytes[100000] ^= 0x40;
    writeFileSync(bad, bytes);
    const r = await run('inspect', bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^lmflash: error: .*bad\.blob: blob CRC mismatch/);
    const missing = await run('inspect', path.join(dir, 'nope.blob'));
    expect(missing.err).toMatch(/cannot read .*nope\.blob: no such file/);
    const tooLong = await run('inspect', blob, '--context', '4096');
    expect(tooLong.err).toMatch(/--context 4096 is longer than the model's 512 positions/);
  });
});

describe('lmflash generate --model', () => {
  it('prints the prompt and the core\'s continuation, stats on stderr', async () => {
    const core = coreJson(blob, ['-p', 'Once upon a time', '-n', '30']);
    const r = await run('generate', '-m', blob, '-p', 'Once upon a time', '-n', '30', '-t', '0');
    expect(r.code).toBe(0);
    expect(r.out).toBe('Once upon a time' + core.text);
    expect(r.err).toMatch(/\[30 tokens after a 5-token prompt, [\d.]+ tok\/s, seed \d+\]/);
  });

  it('--json gives ids, text and stats; a seed reproduces a sampled run', async () => {
    const a = JSON.parse((await run('generate', '-m', blob, '-p', 'Tom', '-n', '25', '-s', '5', '--json')).out);
    const b = JSON.parse((await run('generate', '-m', blob, '-p', 'Tom', '-n', '25', '-s', '5', '--json')).out);
    expect(a.generated_tokens).toHaveLength(25);
    expect(b.generated_tokens).toEqual(a.generated_tokens);
    expect(a.stats).toMatchObject({ prompt_tokens: 3, generated_tokens: 25, seed: 5 });
    expect(a.text.length).toBeGreaterThan(20);
  });

  it('says what is wrong with bad options or files', async () => {
    expect((await run('generate', '-m', path.join(dir, 'none.blob'), '-p', 'x')).err).toMatch(/cannot read the model .*none\.blob: no such file/);
    expect((await run('generate', '-m', blob, '-p', 'x', '--top-p', '2')).err).toMatch(/expected a number from 0\.01 to 1/);
    const long = await run('generate', '-m', blob, '-p', 'word '.repeat(100), '--ctx', '16');
    expect(long.code).toBe(1);
    expect(long.err).toMatch(/the prompt is 302 tokens, longer than --ctx 16: raise --ctx \(the model allows up to 512\)/);
    expect(long.out).toBe('');
  });
});

describe('lmflash eval', () => {
  it('prints perplexity and the distance from the float reference', async () => {
    const r = await run('eval', blob, '--text', STORIES_SAMPLES, '--split', 'test', '--limit', '8', '--reference', STORIES_MODEL, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.documents).toBe(8);
    expect(j.perplexity).toBeGreaterThan(1.5);
    expect(j.perplexity).toBeLessThan(5);
    expect(j.reference.meanKl).toBeGreaterThan(0);
    expect(j.reference.meanKl).toBeLessThan(0.02);
    expect(j.reference.top1Agreement).toBeGreaterThan(0.9);
  });

  it('refuses a reference that is not the blob\'s model and an empty split', async () => {
    const empty = path.join(dir, 'empty.txt');
    writeFileSync(empty, '\n\n');
    expect((await run('eval', blob, '--text', empty)).err).toMatch(/has no non-empty lines/);
    expect((await run('eval', blob, '--text', STORIES_SAMPLES, '--split', 'dev')).err).toMatch(/--split must be test, train or all/);
  });
});
