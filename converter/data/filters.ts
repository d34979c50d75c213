/**
 * Quality filters: rules that remove a whole document, each with a
 * threshold the user can change (docs/data-cleaning.md gives the reasons
 * for the defaults). A document is removed when a measure is strictly past
 * its threshold: at the threshold it is kept.
 */
import { readFile } from 'node:fs/promises';
import { LmflashError } from '../../src/errors.js';
import { checkInputFile } from '../../src/input-file.js';
import { fmix32, hash32 } from './hash.js';
import { PLACEHOLDER } from './pii.js';

/** A document as the rules see it: normalised lines, their text, its lower-cased words. */
export interface DocView {
  lines: string[];
  text: string;
  words: string[];
}

export interface ScriptFilter {
  names: string[];
  minShare: number;
  /** Letters written in one of `names`. */
  letters: RegExp;
}

export interface Blocklist {
  size: number;
  /** Any listed keyword or phrase, case-insensitively, as whole words. */
  pattern: RegExp;
}

export interface QualityOptions {
  minWords: number;
  maxWords: number;
  maxSymbolRatio: number;
  maxRepeatedLines: number;
  maxRepeatedNgrams: number;
  ngramSize: number;
  scripts: ScriptFilter | null;
  blocklist: Blocklist | null;
}

export const DEFAULT_QUALITY: QualityOptions = {
  minWords: 3,
  maxWords: 100_000,
  maxSymbolRatio: 0.1,
  maxRepeatedLines: 0.3,
  maxRepeatedNgrams: 0.5,
  ngramSize: 5,
  scripts: null,
  blocklist: null,
};

export type QualityRule = 'too-short' | 'too-long' | 'script' | 'symbols' | 'repeated-lines' | 'repeated-ngrams' | 'blocklist';

const fmt = (x: number) => String(Math.round(x * 1000) / 1000);

// Symbols that mark markup, code, lists and decoration rather than prose
// (Gopher's rule counts # and ellipses): math, modifier and other symbols
// (emoji, box drawing, ©), # and *, and ellipses (NFKC has turned "…" into
// "..."). Currency signs, @, % and & are left out: prose uses them ("$5",
// "50%", "R&D") and one in a short document must not condemn it.
const SYMBOL = /[\p{Sm}\p{Sk}\p{So}#*]|\.\.\./gu;

/** Symbols per word; the placeholders that PII redaction inserts are words, not symbols. */
export function symbolRatio(d: DocView): number {
  const symbols = d.text.replace(PLACEHOLDER, ' ').match(SYMBOL)?.length ?? 0;
  if (symbols === 0) return 0;
  return d.words.length === 0 ? Infinity : symbols / d.words.length;
}

/** The share of lines that repeat an earlier line of the same document. */
export function repeatedLineShare(lines: string[]): number {
  return lines.length === 0 ? 0 : (lines.length - new Set(lines).size) / lines.length;
}

/**
 * The share of the document's word characters that lie in a word n-gram
 * occurring more than once in it (Gopher's "duplicate n-gram character
 * fraction"): high for spam, lists and generated loops.
 */
export function repeatedNgramShare(ws: string[], n: number): number {
  if (ws.length < n) return 0;
  // n-grams compared by a 32-bit hash, not as joined strings: a collision only overstates the share by a hair
  const wordHashes = ws.map((w) => hash32(w));
  const grams = new Uint32Array(ws.length - n + 1);
  const counts = new Map<number, number>();
  for (let i = 0; i < grams.length; i++) {
    let h = n;
    for (let j = i; j < i + n; j++) h = fmix32(h ^ wordHashes[j]);
    grams[i] = h;
    counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  const covered = new Uint8Array(ws.length);
  grams.forEach((g, i) => {
    if (counts.get(g)! > 1) covered.fill(1, i, i + n);
  });
  let total = 0;
  let repeated = 0;
  ws.forEach((w, i) => {
    total += w.length;
    if (covered[i]) repeated += w.length;
  });
  return repeated / total;
}

/** The share of letters written in the expected scripts (digits, punctuation and spaces are in every script and do not count). */
function scriptShare(text: string, f: ScriptFilter): number {
  const letters = text.match(/\p{L}/gu)?.length ?? 0;
  return letters === 0 ? 0 : (text.match(f.letters)?.length ?? 0) / letters;
}

export function scriptFilter(names: string[], minShare: number): ScriptFilter {
  for (const name of names) {
    try {
      new RegExp(`\\p{Script=${name}}`, 'u');
    } catch {
      throw new LmflashError(`unknown script "${name}": give Unicode script names such as Latin, Han, Cyrillic, Greek, Arabic (e.g. --scripts Han,Hiragana,Katakana)`);
    }
  }
  const set = names.map((n) => `\\p{Script=${n}}`).join('');
  return { names, minShare, letters: new RegExp(`(?=\\p{L})[${set}]`, 'gu') };
}

/** Which listed keyword the document contains, if any. */
function blockedKeyword(text: string, b: Blocklist): string | null {
  return text.match(b.pattern)?.[0] ?? null;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// A keyword edge needs a word boundary when it is a letter or digit of a script written with spaces.
const needsBoundary = (c: string) => /[\p{L}\p{N}]/u.test(c) && !/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u.test(c);

/**
 * One keyword per line; blank lines and lines starting with # are ignored.
 * A keyword matches whole words ("ass" does not match "class"), except at an
 * edge written in Han or kana, which have no spaces to bound a word.
 */
export function parseBlocklist(text: string): Blocklist {
  const keywords = [...new Set(text.split(/\r?\n/).map((l) => l.normalize('NFKC').trim().replace(/\s+/g, ' ')).filter((l) => l && !l.startsWith('#')))];
  const alternatives = keywords.map((k) => {
    const before = needsBoundary(k[0]) ? '(?<![\\p{L}\\p{N}])' : '';
    const after = needsBoundary(k.at(-1)!) ? '(?![\\p{L}\\p{N}])' : '';
    return before + escape(k).replace(/ /g, '\\s+') + after;
  });
  // An empty list matches nothing.
  return { size: keywords.length, pattern: new RegExp(alternatives.join('|') || '(?!)', 'iu') };
}

export async function loadBlocklist(file: string): Promise<Blocklist> {
  checkInputFile(file, 'blocklist');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LmflashError(`cannot read the blocklist ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return parseBlocklist(text);
}

type Rule = (d: DocView, o: QualityOptions) => string | null;

/** The rules in the order they are tried; each says why it removes a document, or null. */
const RULES: [QualityRule, Rule][] = [
  ['too-short', (d, o) => (d.words.length < o.minWords ? `words: ${d.words.length} < ${o.minWords}` : null)],
  ['too-long', (d, o) => (d.words.length > o.maxWords ? `words: ${d.words.length} > ${o.maxWords}` : null)],
  [
    'script',
    (d, o) => {
      if (!o.scripts) return null;
      const share = scriptShare(d.text, o.scripts);
      return share < o.scripts.minShare ? `letters in ${o.scripts.names.join(', ')}: ${fmt(share)} < ${o.scripts.minShare}` : null;
    },
  ],
  [
    'symbols',
    (d, o) => {
      const r = symbolRatio(d);
      return r > o.maxSymbolRatio ? `symbols per word: ${fmt(r)} > ${o.maxSymbolRatio}` : null;
    },
  ],
  [
    'repeated-lines',
    (d, o) => {
      const s = repeatedLineShare(d.lines);
      return s > o.maxRepeatedLines ? `repeated lines: ${fmt(s)} > ${o.maxRepeatedLines}` : null;
    },
  ],
  [
    'repeated-ngrams',
    (d, o) => {
      const s = repeatedNgramShare(d.words, o.ngramSize);
      return s > o.maxRepeatedNgrams ? `characters in repeated ${o.ngramSize}-grams: ${fmt(s)} > ${o.maxRepeatedNgrams}` : null;
    },
  ],
  [
    'blocklist',
    (d, o) => {
      const hit = o.blocklist && blockedKeyword(d.text, o.blocklist);
      return hit ? `contains "${hit}"` : null;
    },
  ],
];

/** The first rule that removes the document and why, or null to keep it. */
export function qualityVerdict(d: DocView, o: QualityOptions): { rule: QualityRule; detail: string } | null {
  for (const [rule, check] of RULES) {
    const detail = check(d, o);
    if (detail !== null) return { rule, detail };
  }
  return null;
}
