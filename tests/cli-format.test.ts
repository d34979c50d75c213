/** The CLI's own surface: --version, and one error format for commander's errors as for lmflash's. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import { PROJECT_ROOT } from './paths.js';

describe('lmflash', () => {
  it('--version and -V print the version from package.json', async () => {
    const version = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')).version as string;
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag);
      expect(r.code).toBe(0);
      expect(r.out).toBe(`${version}\n`);
    }
  });

  it.each([
    [['generate', '--bogus'], "unknown option '--bogus'"],
    [['generate', '-p'], "option '-p, --prompt <text>' argument missing"],
    [['nosuch'], "unknown command 'nosuch'"],
    [['generate', '--top-k', 'x'], "option '-k, --top-k <k>' argument 'x' is invalid"],
    [['data', 'clean', 'x.txt'], "required option '-o, --output <file>' not specified"],
    [['tokenizer', 'train', 'x.txt', '--vocab', '300', '-o', 'y.bin', '--bogus'], "unknown option '--bogus'"],
    [['export', 'onnx', '-o', 'x.onnx'], "missing required argument 'model'"],
  ])('%j: commander\'s error in the one format, `lmflash: error: …`, exit 1', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^lmflash: error: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(r.out).toBe('');
  });
});
