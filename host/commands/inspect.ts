/** `lmflash inspect <model.blob> [--context N] [--json]`: what is in a blob and what it needs on a board. */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { readBlob, type BlobView } from '../../src/blob.js';
import { LmflashError } from '../../src/errors.js';
import { parameterCount, ramPlan, type RamPlan } from '../../src/memory-plan.js';
import type { CliIO } from '../io.js';

export function parsePositiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return Number(value);
}

export async function readBlobFile(file: string): Promise<BlobView> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new LmflashError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    return readBlob(bytes);
  } catch (e) {
    if (e instanceof LmflashError) throw new LmflashError(`${file}: ${e.message}`);
    throw e;
  }
}

export interface InspectReport {
  file: string;
  formatVersion: string;
  architecture: 'transformer';
  config: BlobView['config'];
  parameters: number;
  flashBytes: number;
  tokenizer: { vocabSize: number; bos: number | null; eos: number | null; unk: number | null; byteFallback: number };
  ram: { fullContext: RamPlan; atContext?: RamPlan };
}

export function inspectReport(file: string, view: BlobView, context?: number): InspectReport {
  const c = view.config;
  if (context !== undefined && context > c.seqLen)
    throw new LmflashError(`--context ${context} is longer than the model's ${c.seqLen} positions`);
  const t = view.tokenizer;
  const id = (v: number) => (v === 0xffffffff ? null : v);
  return {
    file,
    formatVersion: `${view.versionMajor}.${view.versionMinor}`,
    architecture: 'transformer',
    config: c,
    parameters: parameterCount(c),
    flashBytes: view.fileSize,
    tokenizer: {
      vocabSize: t.vocabSize,
      bos: id(t.bosId),
      eos: id(t.eosId),
      unk: id(t.unkId),
      byteFallback: t.byteIds.filter((v) => v !== 0xffffffff).length,
    },
    ram: { fullContext: ramPlan(c, c.seqLen), ...(context !== undefined ? { atContext: ramPlan(c, context) } : {}) },
  };
}

const kib = (n: number) => `${n.toLocaleString('en-US')} bytes (${(n / 1024).toFixed(1)} KiB)`;

function formatRam(p: RamPlan): string[] {
  return [
    `RAM at context ${p.ctx}: ${kib(p.totalBytes)}`,
    `  KV cache ${kib(p.kvCacheBytes)}, activations ${kib(p.activationBytes)}, sampler ${kib(p.samplerBytes)}, tokens ${kib(p.tokenBytes)}`,
  ];
}

export function formatInspect(r: InspectReport): string {
  const c = r.config;
  const lines = [
    `${r.file}: lmflash blob v${r.formatVersion}, Llama-style transformer`,
    `  dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv), vocab ${c.vocabSize}, context ${c.seqLen}`,
    `  ${r.parameters.toLocaleString('en-US')} parameters, int8 with group size ${c.groupSize}, ${c.sharedClassifier ? 'shared' : 'separate'} classifier`,
    `  tokenizer: ${r.tokenizer.vocabSize} tokens, ${r.tokenizer.byteFallback} byte-fallback, BOS ${r.tokenizer.bos ?? 'none'}, EOS ${r.tokenizer.eos ?? 'none'}`,
    `flash: ${kib(r.flashBytes)}`,
    ...formatRam(r.ram.fullContext),
    ...(r.ram.atContext ? formatRam(r.ram.atContext) : []),
  ];
  return lines.join('\n') + '\n';
}

export function register(program: Command, io: CliIO): void {
  program
    .command('inspect')
    .description("show a blob's model, tokenizer, flash size and the RAM the decoder needs")
    .argument('<model>', 'an lmflash blob')
    .option('-c, --context <n>', 'also show the RAM needed at this context length', parsePositiveInt)
    .option('--json', 'print the report as JSON')
    .action(async (model: string, opts: { context?: number; json?: boolean }) => {
      const report = inspectReport(model, await readBlobFile(model), opts.context);
      io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatInspect(report));
    });
}
