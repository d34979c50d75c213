/** Where tests find the project and the shared read-only data (../shared from the project root). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED = path.resolve(PROJECT_ROOT, '../shared');
export const STORIES_MODEL = path.join(SHARED, 'models/stories260K.bin');
export const STORIES_TOKENIZER = path.join(SHARED, 'models/tok512.bin');
export const STORIES_REFERENCE = path.join(SHARED, 'reference/stories260K');
export const STORIES_SAMPLES = path.join(SHARED, 'corpora/stories260K-samples.txt');
