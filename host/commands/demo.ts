/**
 * `lmflash demo [--out DIR] [--no-chat]`: the default model, made here from
 * text the project writes itself (converter/demo/stories.ts) — an order-4
 * word N-gram, so that it trains in seconds — then a chat with it on the
 * virtual board. The same seed always gives the same corpus and the same
 * blob, byte for byte.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { demoCorpus } from '../../converter/demo/stories.js';
import { trainNgram } from '../../converter/ngram/train.js';
import { tokenizerFileBytes, trainVocabulary } from '../../converter/tokenizer/train.js';
import { decodeTokenizerBin, tokenizerDataFromBin } from '../../converter/tokenizer/vocab-file.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import type { CliIO } from '../io.js';
import { parsePositiveInt } from './inspect.js';

export const DEMO_STORIES = 20_000;
export const DEMO_SEED = 2026;
export const DEMO_ORDER = 5;
export const DEMO_VOCAB = 512;
/** The board whose pace the demo's virtual board keeps by default: a common dev kit (ESP32-S3-DevKitC-1-N8R2). */
export const DEMO_PACE = 's3-n8r2';

/**
 * The demo blob: stories from the seed, one a line; a 512-token BPE
 * vocabulary trained on them (so "time," and "time" share pieces and
 * punctuation decodes without stray spaces), then an order-5 N-gram over
 * those tokens.
 */
export function buildDemoModel(stories = DEMO_STORIES, seed = DEMO_SEED): { blob: Buffer; corpus: string; tokens: number } {
  const corpus = demoCorpus(stories, seed);
  const lines = corpus.split('\n').filter((l) => l.length > 0);
  const vocab = trainVocabulary(lines, { type: 'bpe', vocabSize: DEMO_VOCAB });
  const tokenizer = tokenizerDataFromBin(decodeTokenizerBin(tokenizerFileBytes(vocab)));
  const result = trainNgram(lines, { order: DEMO_ORDER, tokenizer, seqLen: 512 });
  return { blob: result.blob, corpus, tokens: result.report.tokens };
}

export function register(program: Command, io: CliIO): void {
  program
    .command('demo')
    .description('build the demo model from stories lmflash writes itself, then chat with it on the virtual board')
    .option('--out <dir>', 'where to write demo-stories.txt and demo.blob', 'out')
    .option('--stories <n>', 'how many stories to generate for training', parsePositiveInt, DEMO_STORIES)
    .option('--no-chat', 'only build the model and print one story from it')
    .option('--pace <board>', "the virtual board answers at this board profile's estimated speed (inspect --board), or off for this computer's full speed", DEMO_PACE)
    .action(async (opts: { out: string; stories: number; chat: boolean; pace: string }) => {
      const t0 = performance.now();
      io.err(`demo: writing ${opts.stories} stories, training a ${DEMO_VOCAB}-token vocabulary and an order-${DEMO_ORDER} model on them...\n`);
      const { blob, corpus, tokens } = buildDemoModel(opts.stories);
      await mkdir(opts.out, { recursive: true });
      const blobPath = path.join(opts.out, 'demo.blob');
      await writeFileAtomic(path.join(opts.out, 'demo-stories.txt'), Buffer.from(corpus));
      await writeFileAtomic(blobPath, blob);
      io.err(`demo: ${tokens.toLocaleString('en-US')} tokens, ${blob.length.toLocaleString('en-US')}-byte model in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${blobPath}\n`);
      // the rest is what any user of a blob would type
      const { runCli } = await import('../program.js');
      const code = opts.chat
        ? await runCli(['chat', '--sim', '--model', blobPath, '--pace', opts.pace], io)
        : await runCli(['generate', '--sim', '--model', blobPath, '-p', 'Once upon a time', '-n', '120', '--seed', '1', '--pace', opts.pace], io);
      if (code !== 0) process.exitCode = code;
    });
}
