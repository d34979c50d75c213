/**
 * `lmflash demo [--ngram] [--out DIR] [--no-chat]`: the default model, made
 * here from text the project writes itself (converter/demo/stories.ts) — a
 * nano transformer trained by lmflash's own engine (converter/demo/
 * transformer.ts), or with --ngram an order-5 N-gram that trains in seconds —
 * then a chat with it on the virtual board. The same seed always gives the
 * same corpus and the same blob, byte for byte; the blob is cached in DIR
 * under a digest of everything that decides its bytes, so it is made once.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Command } from 'commander';
import { demoCorpus, STORY_GRAMMAR_VERSION } from '../../converter/demo/stories.js';
import { demoCodeDigest } from '../../converter/demo/code-digest.js';
import { buildDemoTransformer, demoCacheKey, demoTransformerSpec } from '../../converter/demo/transformer.js';
import { trainNgram } from '../../converter/ngram/train.js';
import { tokenizerFileBytes, trainVocabulary } from '../../converter/tokenizer/train.js';
import { decodeTokenizerBin, tokenizerDataFromBin } from '../../converter/tokenizer/vocab-file.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import type { CliIO } from '../io.js';
import { TrainProgress } from '../train-progress.js';
import { parsePositiveInt } from '../option-parsers.js';
import { chooseKernels } from './train-transformer.js';

export const DEMO_STORIES = 20_000;
export const DEMO_SEED = 2026;
export const DEMO_ORDER = 5;
export const DEMO_VOCAB = 512;
/** The transformer demo trains on fewer stories than the N-gram: it sees each token several times anyway. */
export const DEMO_TRANSFORMER_STORIES = 8000;
export const DEMO_TRANSFORMER_STEPS = 700;
/** The board whose pace the demo's virtual board keeps by default: a common dev kit (ESP32-S3-DevKitC-1-N8R2). */
export const DEMO_PACE = 's3-n8r2';

/**
 * The N-gram demo blob: stories from the seed, one a line; a 512-token BPE
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

function ngramCacheKey(stories: number, seed: number): string {
  const what = { grammar: STORY_GRAMMAR_VERSION, kind: 'ngram', code: demoCodeDigest(), stories, seed, order: DEMO_ORDER, vocab: DEMO_VOCAB, seqLen: 512 };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 12);
}

interface DemoOpts {
  out: string;
  stories?: number;
  steps: number;
  ngram?: boolean;
  chat: boolean;
  pace: string;
}

/** The demo blob in opts.out: the cached one when its key matches, else made now (and cached). */
async function demoBlob(io: CliIO, opts: DemoOpts): Promise<string> {
  await mkdir(opts.out, { recursive: true });
  const t0 = performance.now();
  if (opts.ngram) {
    const stories = opts.stories ?? DEMO_STORIES;
    const blobPath = path.join(opts.out, `demo-ngram-${ngramCacheKey(stories, DEMO_SEED)}.blob`);
    if (existsSync(blobPath)) {
      io.err(`demo: using the N-gram model made earlier: ${blobPath}\n`);
      return blobPath;
    }
    io.err(`demo: writing ${stories} stories, training a ${DEMO_VOCAB}-token vocabulary and an order-${DEMO_ORDER} model on them...\n`);
    const { blob, corpus, tokens } = buildDemoModel(stories);
    await writeFileAtomic(path.join(opts.out, 'demo-stories.txt'), Buffer.from(corpus));
    await writeFileAtomic(blobPath, blob);
    io.err(`demo: ${tokens.toLocaleString('en-US')} tokens, ${blob.length.toLocaleString('en-US')}-byte model in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${blobPath}\n`);
    return blobPath;
  }
  const kernels = chooseKernels('wasm');
  const spec = demoTransformerSpec(opts.stories ?? DEMO_TRANSFORMER_STORIES, DEMO_SEED, opts.steps);
  const blobPath = path.join(opts.out, `demo-transformer-${demoCacheKey(spec, kernels)}.blob`);
  if (existsSync(blobPath)) {
    io.err(`demo: using the transformer trained earlier: ${blobPath} (delete it to train again)\n`);
    return blobPath;
  }
  const c = spec.config;
  io.err(
    `demo: writing ${spec.stories} stories, training a ${spec.vocab}-token vocabulary, then a transformer (dim ${c.dim}, ${c.nLayers} layers, ` +
      `${c.nHeads} heads) for ${spec.settings.steps} steps — about a minute or two, once; the model is kept in ${opts.out}/\n`,
  );
  const progress = new TrainProgress(io, Boolean(process.stderr.isTTY), spec.settings.steps, 0);
  const r = await buildDemoTransformer(spec, kernels, { onStep: (e) => progress.step(e), onValidate: (e, improved) => progress.validation(e, improved) });
  progress.end();
  await writeFileAtomic(path.join(opts.out, 'demo-stories.txt'), Buffer.from(r.corpus));
  await writeFileAtomic(blobPath, r.blob);
  io.err(
    `demo: ${r.trainTokens.toLocaleString('en-US')} training tokens, validation perplexity ${r.valLoss === null ? 'n/a' : Math.exp(r.valLoss).toFixed(3)}, ` +
      `${r.blob.length.toLocaleString('en-US')}-byte model in ${r.seconds.toFixed(1)} s: ${blobPath}\n`,
  );
  return blobPath;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('demo')
    .description('build the demo model from stories lmflash writes itself (a transformer it trains, or --ngram), then chat with it on the virtual board')
    .option('--out <dir>', 'where to keep demo-stories.txt and the demo blob (made once, then reused)', 'out')
    .option('--ngram', 'the order-5 N-gram demo instead of the transformer (trains in seconds)')
    .option('--stories <n>', `how many stories to generate for training (default ${DEMO_TRANSFORMER_STORIES}, --ngram ${DEMO_STORIES})`, parsePositiveInt)
    .option('--steps <n>', 'transformer training steps', parsePositiveInt, DEMO_TRANSFORMER_STEPS)
    .option('--no-chat', 'only build the model and print one story from it')
    .option('--pace <board>', "the virtual board answers at this board profile's estimated speed (inspect --board), or off for this computer's full speed", DEMO_PACE)
    .action(async (opts: DemoOpts) => {
      const blobPath = await demoBlob(io, opts);
      await readFile(blobPath); // fail here, clearly, if the cache was removed meanwhile
      // the rest is what any user of a blob would type
      const { runCli } = await import('../program.js');
      const code = opts.chat
        ? await runCli(['chat', '--sim', '--model', blobPath, '--pace', opts.pace], io)
        : await runCli(['generate', '--sim', '--model', blobPath, '-p', 'Once upon a time', '-n', '120', '--seed', '1', '--pace', opts.pace], io);
      if (code !== 0) process.exitCode = code;
    });
}
