/**
 * src/temp-dir.ts: the scratch folders commands hand blobs to the native core
 * in (prune, distill, finetune, convert's tokenizer check) are removed when
 * the work ends, when it throws, and when Ctrl-C or kill ends the process,
 * which skips every `finally`. Run in a real child process with real signals.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const MODULE = path.join(PROJECT_ROOT, 'dist/src/temp-dir.js');

/** A node child whose temp folder is `tmp`, running `body` (an async function of withTempDir and withBlobFile). */
function child(tmp: string, body: string) {
  const script = `const { withTempDir, withBlobFile } = await import(${JSON.stringify(MODULE)});\nawait (${body})(withTempDir, withBlobFile);`;
  const p = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const printed = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => (out.includes(text) ? resolve() : undefined);
      p.stdout.on('data', check);
      p.on('exit', () => reject(new Error(`child ended before printing ${text}: ${err}`)));
      check();
    });
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  return { p, printed, ended, out: () => out, err: () => err };
}

describe('temporary folders for the native core', () => {
  it('holds the blob while the work runs and is gone after it, also when the work throws', async () => {
    const tmp = tempDir('tempdir-ok');
    const run = child(
      tmp,
      `async (withTempDir, withBlobFile) => {
        const fs = await import('node:fs');
        const seen = await withBlobFile('test', Buffer.from('blob bytes'), async (file) => fs.readFileSync(file, 'utf8'));
        console.log('read:' + seen);
        try { await withTempDir('test', async () => { throw new Error('boom'); }); } catch (e) { console.log('threw:' + e.message); }
      }`,
    );
    const { code } = await run.ended;
    expect(code, run.err()).toBe(0);
    expect(run.out()).toContain('read:blob bytes');
    expect(run.out()).toContain('threw:boom');
    expect(readdirSync(tmp)).toEqual([]);
  });

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`is removed when ${sig} ends the process mid-work, and the process still dies of the signal`, async () => {
      const tmp = tempDir(`tempdir-${sig}`);
      const run = child(
        tmp,
        `async (withTempDir) => {
          await withTempDir('test', async (dir) => {
            (await import('node:fs')).writeFileSync(dir + '/model.blob', 'x');
            console.log('dir:' + dir);
            await new Promise(() => setInterval(() => {}, 1000));
          });
        }`,
      );
      await run.printed('dir:');
      const dir = run.out().trim().slice('dir:'.length);
      expect(existsSync(path.join(dir, 'model.blob'))).toBe(true);
      run.p.kill(sig);
      const { signal } = await run.ended;
      expect(signal).toBe(sig);
      expect(existsSync(dir)).toBe(false);
      expect(readdirSync(tmp)).toEqual([]);
    });
  }
});
