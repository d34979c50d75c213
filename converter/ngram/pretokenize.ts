/**
 * The word rule of the N-gram tests and benchmark (the issue's KenLM
 * reference figures were measured with it). It is not applied by
 * `lmflash train ngram`, which takes words exactly as they stand: run it over
 * a text first (or write the text that way) to get these words.
 *
 * A space on each side of each of the nine ASCII characters . , ; : ! ? " ( ),
 * ASCII A-Z lowercased (nothing else), runs of spaces squeezed to one, the
 * ends trimmed. Apostrophes and hyphens stay inside words.
 */
export function splitPunctuationLowercase(line: string): string {
  return line
    .replace(/[.,;:!?"()]/g, (c) => ` ${c} `)
    .replace(/[A-Z]/g, (c) => c.toLowerCase())
    .replace(/ {2,}/g, ' ')
    .trim();
}
