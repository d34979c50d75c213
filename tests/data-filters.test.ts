/** Normalisation and the quality filters of `lmflash data clean`, each on constructed documents on both sides of its threshold. */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_QUALITY,
  parseBlocklist,
  qualityVerdict,
  repeatedLineShare,
  repeatedNgramShare,
  scriptFilter,
  symbolRatio,
  type DocView,
  type QualityOptions,
} from '../converter/data/filters.js';
import { normalizeLine, sentences, wordKey, words } from '../converter/data/normalize.js';
import { LmflashError } from '../src/errors.js';

function view(...lines: string[]): DocView {
  const text = lines.join(' ');
  return { lines, text, words: words(text.toLowerCase()) };
}

/** The rule that removes the document, or 'kept'. */
function verdict(options: Partial<QualityOptions>, ...lines: string[]): string {
  return qualityVerdict(view(...lines), { ...DEFAULT_QUALITY, ...options })?.rule ?? 'kept';
}

/** n distinct two-letter words, so that shares of characters equal shares of words. */
const distinct = (n: number, from = 0) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + ((from + i) % 26)) + String.fromCharCode(97 + Math.floor((from + i) / 26)));

describe('normalisation', () => {
  it('applies NFKC, removes invisible characters and collapses whitespace', () => {
    expect(normalizeLine('ｆｕｌｌ\u3000ｗｉｄｔｈ')).toBe('full width');
    expect(normalizeLine('the ﬁne print ①')).toBe('the fine print 1');
    expect(normalizeLine(' a \t b\u00a0c\u2028d ')).toBe('a b c d');
    expect(normalizeLine('\ufeffzero\u200bwidth co\u00adoperate')).toBe('zerowidth cooperate');
    expect(normalizeLine('wait…')).toBe('wait...');
    expect(normalizeLine('  plain   ascii ')).toBe('plain ascii');
    expect(normalizeLine('family 👨\u200d👩\u200d👧')).toBe('family 👨\u200d👩\u200d👧'); // ZWJ joins the emoji
    expect(normalizeLine('e\u0301')).toBe('é'); // composed
  });

  it('counts a Han or kana character as a word', () => {
    expect(words("Hello, world! It's 42.")).toEqual(['Hello', 'world', 'It', 's', '42']);
    expect(words('我爱ESP32开发板')).toEqual(['我', '爱', 'ESP32', '开', '发', '板']);
    expect(words('こんにちは')).toHaveLength(5);
    expect(wordKey('The LORD,  said: "Go!"')).toBe('the lord said go');
  });

  it('splits sentences after closing quotes and CJK stops', () => {
    expect(sentences('He said, "Go." Then he went! Why?')).toEqual(['He said, "Go."', 'Then he went!', 'Why?']);
    expect(sentences('你好。再见！没有句号')).toEqual(['你好。', '再见！', '没有句号']);
  });
});

describe('quality filters', () => {
  it('document length in words', () => {
    expect(verdict({}, 'Jesus wept.')).toBe('too-short');
    expect(verdict({}, 'Pray without ceasing.')).toBe('kept'); // 3 = the default minimum
    expect(verdict({ minWords: 0 }, 'Jesus wept.')).toBe('kept');
    expect(verdict({ minWords: 3 }, '我爱你')).toBe('kept'); // three words in Chinese
    expect(verdict({ maxWords: 5 }, 'one two three four five')).toBe('kept');
    expect(verdict({ maxWords: 5 }, 'one two three four five six')).toBe('too-long');
  });

  it('symbols per word', () => {
    const ten = distinct(10).join(' ');
    expect(symbolRatio(view(ten + ' #'))).toBeCloseTo(0.1);
    expect(verdict({}, ten + ' #')).toBe('kept'); // exactly 0.1
    expect(verdict({}, ten + ' # *')).toBe('symbols');
    expect(verdict({}, ten + ' ... ©')).toBe('symbols'); // an ellipsis and a sign
    expect(symbolRatio(view('it costs $5 or 50% less at R&D, mail me@example.com'))).toBe(0); // prose signs are not symbols
    expect(verdict({}, ten + ' 😀 😀')).toBe('symbols');
    expect(symbolRatio(view('Yea, hath God said; Ye shall not eat: of every tree (of the garden)?'))).toBe(0); // prose punctuation
    expect(symbolRatio(view('write to <EMAIL> or call <PHONE> today'))).toBe(0); // placeholders are not symbols
    expect(verdict({ minWords: 0 }, '### *** @@@')).toBe('symbols'); // symbols and no words at all
  });

  it('share of repeated lines', () => {
    expect(repeatedLineShare(['a', 'b', 'c', 'a'])).toBe(0.25);
    const lines = distinct(7).concat(['aa', 'ba', 'ca']); // 3 of 10 repeat an earlier line
    expect(verdict({ minWords: 0 }, ...lines)).toBe('kept'); // exactly 0.3
    expect(verdict({ minWords: 0 }, 'one line', 'two line', 'one line')).toBe('repeated-lines'); // 1/3
  });

  it('share of characters in repeated n-grams', () => {
    expect(repeatedNgramShare(distinct(12), 5)).toBe(0);
    expect(repeatedNgramShare(distinct(4).concat(distinct(4)), 5)).toBe(0); // a repeat shorter than n
    const rep = distinct(5, 100);
    // 10 of 20 words are in a 5-gram that occurs twice: exactly the default 0.5
    expect(repeatedNgramShare([...rep, ...distinct(10), ...rep], 5)).toBe(0.5);
    expect(verdict({}, [...rep, ...distinct(10), ...rep].join(' '))).toBe('kept');
    expect(verdict({}, [...rep, ...distinct(9), ...rep].join(' '))).toBe('repeated-ngrams'); // 10/19
    expect(verdict({ ngramSize: 6 }, [...rep, ...distinct(9), ...rep].join(' '))).toBe('kept'); // no repeated 6-gram
    expect(verdict({}, 'buy now buy now buy now buy now buy now buy now')).toBe('repeated-ngrams');
  });

  it('share of letters in the expected scripts', () => {
    const latin = scriptFilter(['Latin'], 0.9);
    const han = scriptFilter(['Han'], 0.9);
    expect(verdict({ scripts: latin }, 'Hello world, 2024!')).toBe('kept');
    expect(verdict({ scripts: latin, minWords: 0 }, 'abcdefghi 世')).toBe('kept'); // 9 of 10 letters: exactly 0.9
    expect(verdict({ scripts: latin, minWords: 0 }, 'abcdefgh 世')).toBe('script'); // 8 of 9
    expect(verdict({ scripts: latin }, 'Привет, как дела сегодня?')).toBe('script');
    expect(verdict({ scripts: han }, '我们在2024年去了公园。')).toBe('kept'); // digits and punctuation are in every script
    expect(verdict({ scripts: han }, 'We went to the park.')).toBe('script');
    expect(verdict({ scripts: han }, '我们今天用ESP32做了一个小项目')).toBe('script'); // 12 Han of 15 letters
    expect(verdict({ scripts: scriptFilter(['Han', 'Latin'], 0.9) }, '我们今天用ESP32做了一个小项目')).toBe('kept');
    expect(verdict({ scripts: latin, minWords: 0 }, '123 456 789')).toBe('script'); // no letters at all
    expect(() => scriptFilter(['Klingon'], 0.9)).toThrow(LmflashError);
    expect(() => scriptFilter(['latin'], 0.9)).toThrow(/unknown script "latin"/); // names are case-sensitive
  });

  it('keyword blocklist: whole words, any case, phrases across spaces, Han without word boundaries', () => {
    const blocklist = parseBlocklist('# one keyword a line\nbadword\n\nsome phrase\n坏蛋\nc++\n');
    expect(blocklist.size).toBe(4);
    const v = (text: string) => verdict({ blocklist, maxSymbolRatio: 1 }, text);
    expect(v('there is a badword here')).toBe('blocklist');
    expect(v('there is a BADWORD here')).toBe('blocklist');
    expect(v('there are badwords here')).toBe('kept');
    expect(v('this is some   phrase indeed')).toBe('blocklist');
    expect(v('this is some phrases indeed')).toBe('kept');
    expect(v('他是一个坏蛋吧')).toBe('blocklist');
    expect(v('I write C++ code')).toBe('blocklist'); // regex characters are literal
    expect(qualityVerdict(view('there is a Badword here'), { ...DEFAULT_QUALITY, blocklist })?.detail).toBe('contains "Badword"');
    expect(verdict({ blocklist: parseBlocklist('# nothing\n') }, 'anything at all')).toBe('kept');
  });

  it('reports the first rule that fails, with the measure and the threshold', () => {
    expect(qualityVerdict(view('# $'), DEFAULT_QUALITY)).toEqual({ rule: 'too-short', detail: 'words: 0 < 3' });
    expect(qualityVerdict(view('one two three four five six seven eight nine ten # *'), DEFAULT_QUALITY)).toEqual({
      rule: 'symbols',
      detail: 'symbols per word: 0.2 > 0.1',
    });
  });
});
