/**
 * `lmflash export onnx <model> [--tokenizer T] -o model.onnx`: any transformer
 * lmflash reads (llama2.c checkpoint, ONNX file, blob — a blob exports its
 * dequantized weights; N-gram blobs have no such graph) as a runnable ONNX graph of the full-sequence forward
 * pass, with its config and tokenizer in the metadata (docs/onnx.md).
 */
import { Argument, type Command } from 'commander';
import { aboutFile, readInputFile } from '../../src/input-file.js';
import { exportOnnx, ONNX_OPSET, tokenizerBinFromData } from '../../converter/onnx-export.js';
import { externalReaderFor, importOnnx, isOnnxPath } from '../../converter/onnx-import.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { BLOB_MAGIC, blobToFloatModel, readBlob } from '../../src/blob.js';
import { readLlama2cCheckpoint, readTokenizerBin } from '../../src/llama2c.js';
import { describeConfig, type FloatModel } from '../../src/model.js';
import { LmflashError } from '../../src/errors.js';
import { ARCH_NGRAM, blobArch } from '../../src/ngram.js';
import { type CliIO, reportTo } from '../io.js';

interface ExportSource {
  model: FloatModel;
  /** llama2.c tokenizer.bin bytes, or null when neither the input nor --tokenizer provides one. */
  tokenizerBin: Uint8Array | null;
  /** "llama2.c legacy checkpoint", "lmflash blob (int8, dequantized)", "ONNX model". */
  kind: string;
}


/**
 * Reads any transformer lmflash understands, with the tokenizer it carries
 * (overridden by `tokenizerPath`). Unlike converter/convert.ts's
 * loadAnyModel, which prune and distill use, a tokenizer is optional here (an
 * ONNX graph can be exported without one) and `--tokenizer` may replace a
 * blob's; it returns tokenizer.bin bytes for the ONNX metadata.
 */
async function loadExportSource(file: string, tokenizerPath?: string): Promise<ExportSource> {
  const bytes = await readInputFile(file, 'model');
  let loaded: ExportSource;
  if (bytes.length >= 4 && bytes.subarray(0, 4).toString('latin1') === BLOB_MAGIC) {
    if (aboutFile(file, () => blobArch(bytes)) === ARCH_NGRAM)
      throw new LmflashError(
        `${file} is an N-gram blob: ONNX export is for transformers (the graph is their forward pass); ` +
          'for a portable copy of a word N-gram, write an ARPA file when training it (`lmflash train ngram TEXT ... --arpa FILE`)',
      );
    loaded = aboutFile(file, () => {
      const view = readBlob(bytes);
      return { model: blobToFloatModel(view), tokenizerBin: tokenizerBinFromData(view.tokenizer), kind: 'lmflash blob (int8 weights, dequantized)' };
    });
  } else if (isOnnxPath(file)) {
    loaded = aboutFile(file, () => {
      const r = importOnnx(bytes, { readExternal: externalReaderFor(file) });
      return { model: r.model, tokenizerBin: r.tokenizerBin, kind: 'ONNX model' };
    });
  } else {
    loaded = aboutFile(file, () => {
      const ckpt = readLlama2cCheckpoint(bytes);
      return { model: ckpt, tokenizerBin: null, kind: `llama2.c ${ckpt.format} checkpoint` };
    });
  }
  if (tokenizerPath) {
    const tok = await readInputFile(tokenizerPath, 'tokenizer');
    aboutFile(tokenizerPath, () => readTokenizerBin(tok, loaded.model.config.vocabSize)); // validate against the model
    loaded.tokenizerBin = tok;
  }
  return loaded;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('export')
    .description('write a transformer (llama2.c checkpoint, ONNX file or blob) in another format: onnx = a runnable ONNX graph of the forward pass (not for N-gram blobs)')
    .addArgument(new Argument('<format>', 'output format').choices(['onnx']))
    .argument('<model>', 'llama2.c checkpoint, .onnx file or lmflash blob (a blob exports its dequantized int8 weights)')
    .option('-t, --tokenizer <file>', 'llama2.c tokenizer.bin to embed in the metadata (default: the one the input carries; a checkpoint carries none)')
    .requiredOption('-o, --output <file>', 'ONNX file to write (a file is replaced atomically; - writes to stdout)')
    .action(async (_format: string, model: string, opts: { tokenizer?: string; output: string }) => {
      const loaded = await loadExportSource(model, opts.tokenizer);
      const bytes = exportOnnx(loaded.model, { tokenizerBin: loaded.tokenizerBin, source: `${loaded.kind} ${model}` });
      await writeFileAtomic(opts.output, bytes);
      const c = loaded.model.config;
      reportTo(io, opts.output)(
        `${model}: ${loaded.kind}, ${describeConfig(c)}\n` +
          `wrote ${opts.output}: ${bytes.length} bytes, ONNX opset ${ONNX_OPSET}; input input_ids int64 [batch, sequence ≤ ${c.seqLen}], ` +
          `output logits float32 [batch, sequence, ${c.vocabSize}]; ` +
          (loaded.tokenizerBin ? 'tokenizer and config in the metadata\n' : 'config in the metadata, no tokenizer (pass --tokenizer to embed one)\n'),
      );
    });
}
