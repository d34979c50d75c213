/**
 * The estimated model as an ARPA file (log10 probabilities and backoffs, the
 * text format KenLM, SRILM and others read), to compare lmflash's estimates
 * with other toolkits' on the same counts. Only word models: an ARPA word
 * cannot hold the spaces of BPE pieces.
 */
import type { NgramModel } from './estimate.js';

export function writeArpa(model: NgramModel, words: string[]): string {
  const out: string[] = ['', '\\data\\'];
  for (const lv of model.levels) out.push(`ngram ${lv.order}=${lv.size}`);
  // the words of every n-gram, order by order (prefix words + last word)
  let prev: string[] = [];
  for (const lv of model.levels) {
    const top = lv.order === model.order;
    out.push('', `\\${lv.order}-grams:`);
    const text: string[] = new Array(lv.size);
    for (let g = 0; g < lv.size; g++) {
      text[g] = lv.order === 1 ? words[lv.word[g]] : `${prev[lv.prefix[g]]} ${words[lv.word[g]]}`;
      const p = lv.logProb[g].toPrecision(7);
      out.push(top ? `${p}\t${text[g]}` : `${p}\t${text[g]}\t${lv.logBackoff[g].toPrecision(7)}`);
    }
    prev = text;
  }
  out.push('', '\\end\\', '');
  return out.join('\n');
}
