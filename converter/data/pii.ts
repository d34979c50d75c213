/**
 * Sensitive content: e-mail addresses, IP addresses, card numbers and phone
 * numbers are replaced by placeholders, so that a model trained on a maker's
 * own notes cannot recite them. The patterns favour precision on prose (a
 * year, a date, a verse number or an amount stays); docs/data-cleaning.md
 * lists the formats recognised.
 */
import { isIPv6 } from 'node:net';

export type PiiKind = 'EMAIL' | 'IP' | 'CARD' | 'PHONE';

export const PII_KINDS: readonly PiiKind[] = ['EMAIL', 'IP', 'CARD', 'PHONE'];

/** Matches any placeholder that redaction inserts. */
export const PLACEHOLDER = /<(?:EMAIL|IP|CARD|PHONE)>/g;

const EMAIL = /(?<![\p{L}\p{N}._%+-])[\p{L}\p{N}._%+-]+@(?:[\p{L}\p{N}-]+\.)+\p{L}{2,}(?![\p{L}\p{N}-])/gu;

// A run of hex groups with at least two colons; isIPv6 decides. Covers full
// and :: forms, an IPv4 tail (::ffff:192.0.2.1) and a zone (fe80::1%eth0).
const IPV6_CANDIDATE = /(?<![\p{L}\p{N}:.%])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?:%[0-9A-Za-z._-]+)?/gu;

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
// Not inside a longer dotted number such as a version 1.2.3.4.5.
const IPV4 = new RegExp(`(?<![\\p{N}.])(?:${OCTET}\\.){3}${OCTET}(?!\\.?\\p{N})`, 'gu');

// 13 to 19 digits, optionally in groups split by single spaces or hyphens, not part of a longer number.
const CARD = /(?<!\d[ -]?)\d(?:[ -]?\d){12,18}(?![ -]?\d)/g;

// Phone numbers in the shapes they are written in: international (+CC …),
// an area code in parentheses, groups split consistently by - or ., and the
// common space-split national forms (0… trunk prefix, or 3-3-4 as in North
// America). Undivided digit runs without a + are not phones: they are far
// more often amounts, years or identifiers.
const PHONE = new RegExp(
  '(?<![\\p{L}\\p{N}+.-])(?:' +
    [
      '\\+\\d{1,3}(?:[ .-]?(?:\\(\\d{1,4}\\)|\\d{1,5})){2,6}',
      '\\(\\d{2,5}\\)[ .-]?\\d{2,4}(?:[ .-]?\\d{2,5}){1,2}',
      '\\d{2,5}(?<sep>[-.])\\d{2,4}(?:\\k<sep>\\d{2,5}){1,2}',
      '0\\d{1,4} \\d{3,4} \\d{3,4}',
      '\\d{3} \\d{3} \\d{4}',
    ].join('|') +
    ')(?![\\p{L}\\p{N}]|[.-]\\d)',
  'gu',
);
const DATE = /^(?:(?:19|20)\d\d([-.])\d\d?\1\d\d?|\d\d?([-.])\d\d?\2(?:19|20)\d\d)$/;

/** The Luhn checksum that every payment card number satisfies (and 9 in 10 random digit strings fail). */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = digits.length - 1, double = false; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}

function ipv6(candidate: string): string | null {
  if (!/[0-9A-Fa-f]/.test(candidate)) return null; // a lone "::" (unspecified address) is punctuation in prose
  if (isIPv6(candidate)) return candidate;
  // "… at 2001:db8::1." or "2001:db8::1: …": sentence punctuation is not part of the address.
  const trimmed = candidate.replace(/[.:]$/, '');
  return trimmed !== candidate && isIPv6(trimmed) ? trimmed : null;
}

function phoneDigits(m: string): boolean {
  const n = m.replace(/\D/g, '').length;
  return n >= 7 && n <= 15 && !DATE.test(m); // E.164 allows at most 15 digits
}

type Counts = Partial<Record<PiiKind, number>>;

/** Replacers in order: addresses first, so that their digits are not read as phone or card numbers. */
const REPLACERS: [PiiKind, (text: string, hit: () => void) => string][] = [
  ['EMAIL', (t, hit) => t.replace(EMAIL, () => (hit(), '<EMAIL>'))],
  [
    'IP',
    (t, hit) =>
      t
        .replace(IPV6_CANDIDATE, (m) => {
          const addr = ipv6(m);
          return addr === null ? m : (hit(), '<IP>' + m.slice(addr.length));
        })
        .replace(IPV4, () => (hit(), '<IP>')),
  ],
  ['CARD', (t, hit) => t.replace(CARD, (m) => (luhnValid(m.replace(/\D/g, '')) ? (hit(), '<CARD>') : m))],
  ['PHONE', (t, hit) => t.replace(PHONE, (m) => (phoneDigits(m) ? (hit(), '<PHONE>') : m))],
];

// Every pattern needs an @ or a digit, or (IPv6) a colon: most lines have none and skip the regexes.
const MAYBE_PII = /[@\d:]/;

/** `text` with sensitive content replaced, and how many of each kind were replaced. */
export function redactPii(text: string): { text: string; counts: Counts } {
  const counts: Counts = {};
  if (!MAYBE_PII.test(text)) return { text, counts };
  for (const [kind, replace] of REPLACERS) {
    text = replace(text, () => void (counts[kind] = (counts[kind] ?? 0) + 1));
  }
  return { text, counts };
}
