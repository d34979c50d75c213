/**
 * Unicode and whitespace normalisation, and the units the cleaning rules
 * count: words, sentences and the case- and punctuation-free key that
 * duplicate detection compares.
 */

// Control and format characters (zero-width spaces, BOMs, soft hyphens, bidi
// marks) are invisible noise to a tokenizer. ZWNJ and ZWJ are kept: they
// change how Persian, Indic scripts and emoji sequences are written.
const INVISIBLE = /(?![\s\u200c\u200d])[\p{Cc}\p{Cf}]/gu;
const SPACES = /\s+/gu;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * NFKC (full-width forms, ligatures and compatibility characters become
 * their plain equivalents), invisible characters removed, every run of
 * whitespace one space, no leading or trailing space.
 */
export function normalizeLine(line: string): string {
  // Most lines of most corpora are plain ASCII, which NFKC leaves as it is.
  if (PRINTABLE_ASCII.test(line)) return line.includes('  ') || line.startsWith(' ') || line.endsWith(' ') ? line.replace(/ +/g, ' ').trim() : line;
  return line.normalize('NFKC').replace(INVISIBLE, '').replace(SPACES, ' ').trim();
}

// Scripts written without spaces between words: each character counts as a
// word, so that lengths and n-grams mean the same for Chinese as for English.
const UNSPACED = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
const UNSPACED_SPLIT = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]|(?:(?![\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}])[\p{L}\p{M}\p{N}])+/gu;
const WORD_RUN = /[\p{L}\p{M}\p{N}]+/gu;

/** Runs of letters, marks and digits; a Han, Hiragana or Katakana character is a word by itself. */
export function words(text: string): string[] {
  const runs = text.match(WORD_RUN) ?? [];
  if (!runs.some((r) => UNSPACED.test(r))) return runs;
  return runs.flatMap((r) => r.match(UNSPACED_SPLIT) ?? []);
}

/**
 * What duplicate detection compares: the words, lower-cased, one space
 * apart. Two documents that differ only in case, punctuation or spacing
 * have the same key.
 */
export function wordKey(text: string): string {
  return words(text.toLowerCase()).join(' ');
}

// A sentence ends at . ! ? (or their CJK forms) and any closing quotes or brackets after them.
const SENTENCE = /[^.!?。！？]+(?:[.!?。！？]+['"”’)\]」』]*|$)/gu;

export function sentences(text: string): string[] {
  return (text.match(SENTENCE) ?? []).map((s) => s.trim()).filter(Boolean);
}
