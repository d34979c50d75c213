/**
 * The check `convert` runs on what it made: a wrong tokenizer of the right
 * size converts without complaint and the board then writes nonsense. The
 * blob scores a short English text (stories from the project's own grammar,
 * converter/demo/stories.ts, or the user's `--check-text`) on the native
 * core; with the model's own tokenizer it finds that text far likelier than a
 * uniform guess over its vocabulary, with another tokenizer far less likely.
 *
 * Measured on stories260K (`lmflash convert stories260K.bin -t TOK -o x.blob`,
 * the default text: 159 tokens): perplexity 11.8 with its tok512.bin, 104,018
 * with a 512-token vocabulary trained on the KJV (`lmflash tokenizer train
 * kjv-verses.txt --vocab 512`), 125,791 with one trained on stories260K's own
 * samples (`--vocab 512` on stories260K-samples.txt); with `--check-text
 * stories260K-samples.txt`: 2.7, 122,242 and 62,491. The threshold, the
 * vocabulary size (512 there: worse than a uniform guess), sits 40x above
 * the right tokenizer and 100x below the wrong ones.
 */
import { demoCorpus } from '../converter/demo/stories.js';
import { Tokenizer, type TokenizerData } from '../src/tokenizer.js';
import { runNativeRows } from './native.js';
import { withBlobFile } from '../src/temp-dir.js';

/** Tokens scored at most: enough to tell, quick even for a 110M model on the host. */
const MAX_CHECK_TOKENS = 160;

export interface TokenizerCheck {
  perplexity: number;
  tokens: number;
  vocabSize: number;
  /** the perplexity is above the vocabulary size: worse than guessing every token uniformly */
  absurd: boolean;
  source: string;
}

/** The default check text: two stories of the demo grammar (English, like the llama2.c models). */
export function defaultCheckText(): string {
  return demoCorpus(2, 1);
}

/** The check text's lines as token sequences (BOS first), MAX_CHECK_TOKENS in all. */
function checkSequences(text: string, tokenizer: TokenizerData, seqLen: number): number[][] {
  const tok = new Tokenizer(tokenizer);
  const seqs: number[][] = [];
  let budget = MAX_CHECK_TOKENS;
  for (const line of text.split('\n')) {
    if (budget <= 1) break;
    if (!line.trim()) continue;
    const ids = tok.encode(line).slice(0, Math.min(seqLen, budget));
    if (ids.length < 2) continue;
    seqs.push(ids);
    budget -= ids.length;
  }
  return seqs;
}

/**
 * Scores `text` with the transformer blob `blob` on the native core: the
 * perplexity of its predictions, log-softmax in float64 as `eval` computes it.
 * Null when the text gives nothing to score.
 */
export async function checkTokenizer(blob: Buffer, tokenizer: TokenizerData, vocabSize: number, seqLen: number, text: string, source: string): Promise<TokenizerCheck | null> {
  const seqs = checkSequences(text, tokenizer, seqLen);
  if (seqs.length === 0) return null;
  return withBlobFile('check', blob, async (file) => {
    let nll = 0;
    let count = 0;
    for (const seq of seqs) {
      let pos = 0;
      await runNativeRows(file, ['--tokens', seq.join(','), '--logits'], vocabSize * 4, (row) => {
        if (pos + 1 < seq.length) {
          let max = -Infinity;
          for (const v of row) if (v > max) max = v;
          let sum = 0;
          for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
          nll -= row[seq[pos + 1]] - (max + Math.log(sum));
          count++;
        }
        pos++;
      });
    }
    const perplexity = Math.exp(nll / count);
    return { perplexity, tokens: count, vocabSize, absurd: !(perplexity <= vocabSize), source };
  });
}

/** The warning convert prints for an absurd perplexity, saying what to do. */
export function tokenizerWarning(c: TokenizerCheck): string {
  return (
    `lmflash: warning: the converted model finds ${c.source} less likely than a uniform guess over its ${c.vocabSize.toLocaleString('en-US')} tokens ` +
    `(perplexity ${Math.round(c.perplexity).toLocaleString('en-US')} over ${c.tokens} tokens; with its own tokenizer a model scores far below that): ` +
    'the tokenizer is probably not the one the model was trained with, and the board would write nonsense; convert again with the model\'s own tokenizer.bin ' +
    '(if the model is not an English one, check with a text in its language: --check-text FILE)\n'
  );
}
