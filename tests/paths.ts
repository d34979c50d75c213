/**
 * Where tests find the project and the shared read-only data (../shared from
 * the project root, or LMFLASH_SHARED). A test that needs shared data names
 * one of the constants below in its own file: tests/shared-data.ts finds it
 * there and skips the file (or fails fast in CI) when the data is missing.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED = path.resolve(PROJECT_ROOT, process.env.LMFLASH_SHARED ?? '../shared');
export const STORIES_MODEL = path.join(SHARED, 'models/stories260K.bin');
export const STORIES_TOKENIZER = path.join(SHARED, 'models/tok512.bin');
export const STORIES_REFERENCE = path.join(SHARED, 'reference/stories260K');
export const STORIES_SAMPLES = path.join(SHARED, 'corpora/stories260K-samples.txt');
export const KJV_VERSES = path.join(SHARED, 'corpora/kjv-verses.txt');
