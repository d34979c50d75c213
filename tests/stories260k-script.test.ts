/** `npm run stories260k` (scripts/stories260k.sh): converts llama2.c's stories260K and chats with it on the virtual board, as the README says. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT, STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';

describe('npm run stories260k', () => {
  it('converts the model and opens a chat with it on the virtual board', () => {
    const out = tempDir('stories260k-script');
    const r = spawnSync('bash', [path.join(PROJECT_ROOT, 'scripts/stories260k.sh'), STORIES_MODEL, STORIES_TOKENIZER], {
      input: 'Once upon a time\n/quit\n',
      encoding: 'utf8',
      env: { ...process.env, LMFLASH_OUT: out },
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(path.join(out, 'stories260K.blob'))).toBe(true);
    expect(r.stderr).toMatch(/connected to virtual board on \/dev\/pts\/\d+/);
    expect(r.stderr).toMatch(/\[\d+ tokens, first after \d+ ms/);
    expect(r.stdout).toMatch(/Type a beginning like "Once upon a time"/);
  });
});
