/** Redaction of sensitive content: what is replaced, and the look-alikes in ordinary prose that must stay. */
import { describe, expect, it } from 'vitest';
import { luhnValid, redactPii } from '../converter/data/pii.js';

const redact = (text: string) => redactPii(text).text;

/** Each case: the input and the expected output. */
function expectAll(cases: [string, string][]): void {
  for (const [input, output] of cases) expect(redact(input), input).toBe(output);
}

describe('e-mail addresses', () => {
  it('replaces addresses, including sub-addresses and international domains', () => {
    expectAll([
      ['Mail jane.doe+news@example.co.uk today.', 'Mail <EMAIL> today.'],
      ['write to 用户@例子.中国 now', 'write to <EMAIL> now'],
      ['<a>x_y%z@mail-server.example.org</a>', '<a><EMAIL></a>'],
      ['user@localhost has no domain', 'user@localhost has no domain'],
      ['meet @ noon, or @home', 'meet @ noon, or @home'],
    ]);
  });
});

describe('card numbers', () => {
  it('checks Luhn', () => {
    for (const valid of ['4111111111111111', '5555555555554444', '378282246310005', '6011111111111117', '4012888888881881', '79927398713']) {
      expect(luhnValid(valid), valid).toBe(true);
    }
    for (const invalid of ['4111111111111112', '1234567890123456', '79927398710', '5555555555554440']) expect(luhnValid(invalid), invalid).toBe(false);
  });

  it('replaces Luhn-valid 13 to 19 digit numbers, grouped or not, and keeps invalid ones', () => {
    expectAll([
      ['card 4111 1111 1111 1111 expires', 'card <CARD> expires'],
      ['card 4111-1111-1111-1111.', 'card <CARD>.'],
      ['card 4111111111111111', 'card <CARD>'],
      ['amex 3782 822463 10005 ok', 'amex <CARD> ok'],
      ['bad 4111 1111 1111 1112', 'bad 4111 1111 1111 1112'], // fails Luhn
      ['order 1234567890123456', 'order 1234567890123456'],
      ['twenty digits 41111111111111110000', 'twenty digits 41111111111111110000'], // too long to be a card
    ]);
  });
});

describe('IP addresses', () => {
  it('replaces IPv4 addresses, not numbers that look alike', () => {
    expectAll([
      ['host 192.168.0.1.', 'host <IP>.'],
      ['v 10.0.0.255:8080', 'v <IP>:8080'],
      ['not an address 256.1.1.1', 'not an address 256.1.1.1'],
      ['version 1.2.3.4.5', 'version 1.2.3.4.5'],
      ['pi is 3.14159', 'pi is 3.14159'],
    ]);
  });

  it('replaces IPv6 in full, compressed, loopback, zone and IPv4-mapped forms', () => {
    expectAll([
      ['full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 form', 'full <IP> form'],
      ['short 2001:db8::1 form', 'short <IP> form'],
      ['prefix 2001:db8:: only', 'prefix <IP> only'],
      ['loopback at ::1.', 'loopback at <IP>.'],
      ['link fe80::1%eth0 zone', 'link <IP> zone'],
      ['mapped ::ffff:192.0.2.128 here', 'mapped <IP> here'],
      ['upper 2001:DB8:0:0:8:800:200C:417A', 'upper <IP>'],
      ['then 2001:db8::1: done', 'then <IP>: done'],
    ]);
  });

  it('keeps times, ratios, verse numbers and C++ scopes', () => {
    expectAll([
      ['at 12:30:45 today', 'at 12:30:45 today'],
      ['ratio 1:2:3', 'ratio 1:2:3'],
      ['John 3:16', 'John 3:16'],
      ['std::cout << x', 'std::cout << x'],
      ['a :: b', 'a :: b'],
    ]);
  });
});

describe('phone numbers', () => {
  it('replaces international and national formats', () => {
    for (const phone of [
      '+1 (555) 123-4567',
      '+44 20 7946 0958',
      '+49 30 1234567',
      '+33 1 42 68 53 00',
      '+8613800138000',
      '(555) 123-4567',
      '(030) 1234 5678',
      '555-123-4567',
      '555.123.4567',
      '020 7946 0958',
      '555 123 4567',
    ]) {
      expect(redact(`call ${phone} now`), phone).toBe('call <PHONE> now');
    }
  });

  it('keeps years, dates, amounts, ranges and other numbers', () => {
    for (const text of [
      'in 1999 there were 2000 men',
      'on 2024-01-15 we met',
      'on 15.01.2024 we met',
      'pay 1,000,000 dollars',
      'years 1990-2000',
      'pages 12-34',
      'code 12345',
      'counts 100 200 300',
      'a run 5551234567 of digits',
      'call 123-45',
    ]) {
      expect(redact(text), text).toBe(text);
    }
  });
});

it('counts each kind and leaves text without any untouched', () => {
  const r = redactPii('a@b.io or c@d.io, 10.0.0.1, +1 555 123 4567');
  expect(r.text).toBe('<EMAIL> or <EMAIL>, <IP>, <PHONE>');
  expect(r.counts).toEqual({ EMAIL: 2, IP: 1, PHONE: 1 });
  expect(redactPii('In the beginning God created the heaven and the earth.')).toEqual({
    text: 'In the beginning God created the heaven and the earth.',
    counts: {},
  });
});
