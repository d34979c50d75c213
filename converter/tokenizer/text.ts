/**
 * Training text for the tokenizer trainers: documents (one a line), characters
 * as the C core sees them, and character frequencies with the dummy prefix.
 */

/**
 * The documents of a training text: its lines (LF or CRLF), empty lines left
 * out. Each document is encoded on its own, so nothing is learned across lines.
 */
export function documentsOf(text: string | Iterable<string>): string[] {
  const lines = typeof text === 'string' ? text.split(/\r?\n/) : [...text];
  return lines.filter((l) => l.length > 0);
}

/** The dummy prefix the encoder puts before every non-empty text (blob flag bit 0). */
export const DUMMY_PREFIX = ' ';

/**
 * How often each character (code point) occurs, counting one dummy-prefix
 * space per document, as the encoder will see it.
 */
export function characterCounts(docs: readonly string[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const doc of docs) {
    counts.set(0x20, (counts.get(0x20) ?? 0) + 1);
    for (const ch of doc) {
      const cp = ch.codePointAt(0) as number;
      counts.set(cp, (counts.get(cp) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Characters by frequency (then code point, so the order is reproducible):
 * at most `limit`, and only as many as cover `coverage` of all occurrences
 * (1.0: every character seen).
 */
export function selectCharacters(counts: Map<number, number>, limit: number, coverage = 1): { cp: number; count: number }[] {
  const all = [...counts].map(([cp, count]) => ({ cp, count })).sort((x, y) => y.count - x.count || x.cp - y.cp);
  const total = all.reduce((s, c) => s + c.count, 0);
  const out: { cp: number; count: number }[] = [];
  let covered = 0;
  for (const c of all) {
    if (out.length >= limit) break;
    if (coverage < 1 && covered >= coverage * total) break;
    out.push(c);
    covered += c.count;
  }
  return out;
}
