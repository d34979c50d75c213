/**
 * A digest of the code that computes a demo blob, for its cache key: every
 * compiled module of the converter and of src/ (the tokenizer trainer, the
 * training engine, the N-gram trainer, the quantizer and the blob writer
 * among them) and any extra file such as the WebAssembly kernels. A blob
 * cached by another build of lmflash, whose arithmetic may differ, is then
 * made again instead of being served as this build's.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** SHA-256 over the modules (.js, or .ts when run from source) under `roots`, sorted by path, and `files`, each with its path relative to `base`. */
export function filesDigest(base: string, roots: string[], files: string[] = []): string {
  const all = [...roots.flatMap((r) => modulesUnder(r)), ...files];
  const h = createHash('sha256');
  for (const f of all) {
    h.update(path.relative(base, f)).update('\0');
    h.update(readFileSync(f)).update('\0');
  }
  return h.digest('hex');
}

function modulesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.[jt]s$/.test(e.name))
    .map((e) => path.join(e.parentPath ?? e.path, e.name))
    .sort();
}

const cached = new Map<string, string>();

/** filesDigest of this build's converter/ and src/ modules and the `extra` files (computed once per process and set of extras). */
export function demoCodeDigest(extra: string[] = []): string {
  const here = path.dirname(fileURLToPath(import.meta.url)); // <build>/converter/demo
  const root = path.resolve(here, '..', '..');
  const key = extra.join('\n');
  let d = cached.get(key);
  if (!d) {
    d = filesDigest(root, [path.join(root, 'converter'), path.join(root, 'src')], extra);
    cached.set(key, d);
  }
  return d;
}
