/** `lmflash data clean` end to end on small folders: output, report, and failures that leave no output behind. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as run } from './cli-helpers.js';

const dir = mkdtempSync(path.join(process.env.LMFLASH_TEST_TMP ?? tmpdir(), 'data-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));


function write(file: string, content: string | Buffer): string {
  const p = path.join(dir, file);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, content);
  return p;
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').slice(0, -1);
const tempFiles = (folder: string) => readdirSync(folder).filter((f) => f.endsWith('.tmp'));

const IRON = 'The soldering iron should be set to 350 degrees for lead-free solder, and its tip cleaned often.';
const notes = path.join(dir, 'notes');
write(
  'notes/a.txt',
  [
    'The ESP32-S3 has two cores and runs at up to 240 MHz.',
    '',
    'Contact me at maker@example.com or +1 555 123 4567 for the board files.',
    'ok',
    '### *** $$$ @@@ the end of it',
    'the esp32-s3 has two cores, and runs at up to 240 MHz!',
    'buy now buy now buy now buy now buy now buy now',
    'This line mentions forbidden stuff and should go.',
  ].join('\r\n'),
);
write('notes/sub/b.md', [IRON, '我们今天用开发板做了一个小项目。', 'The server at 192.168.1.20 and 2001:db8::7 answered at once.', IRON.replace('cleaned', 'wiped')].join('\n'));
write('notes/.hidden.txt', 'hidden content must never reach the output\n');
write('notes/image.bin', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13]));
const blocklist = write('block.txt', '# words we do not want\nforbidden\n');

describe('lmflash data clean', () => {
  it('cleans a folder: output one document a line, report with counts and examples', async () => {
    const out = path.join(dir, 'out.txt');
    const report = path.join(dir, 'report.json');
    const r = await run('data', 'clean', notes, '-o', out, '--report', report, '--blocklist', blocklist);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(lines(out)).toEqual([
      'The ESP32-S3 has two cores and runs at up to 240 MHz.',
      'Contact me at <EMAIL> or <PHONE> for the board files.',
      IRON,
      '我们今天用开发板做了一个小项目。',
      'The server at <IP> and <IP> answered at once.',
    ]);
    expect(r.out).toMatch(/^read 11 documents from 2 files in \d+\.\d s \([\d,]+ documents\/s\)$/m);
    expect(r.out).toContain(`kept 5 documents; wrote 5 to ${out}`);
    expect(r.out).toContain('skipped 1 file(s)');

    const rep = JSON.parse(readFileSync(report, 'utf8'));
    expect(rep.documents).toEqual({ read: 11, kept: 5, written: 5 });
    const counts = (t: Record<string, { count: number }>) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.count]));
    expect(counts(rep.removed)).toEqual({
      'too-short': 1,
      symbols: 1,
      'exact-duplicate': 1,
      'repeated-ngrams': 1,
      blocklist: 1,
      'near-duplicate': 1,
    });
    expect(counts(rep.redacted)).toEqual({ EMAIL: 1, PHONE: 1, IP: 2 });
    const a = path.join(notes, 'a.txt');
    expect(rep.removed['too-short'].examples).toEqual([{ where: `${a}:4`, text: 'ok', why: 'words: 1 < 3' }]);
    expect(rep.removed.blocklist.examples[0]).toMatchObject({ where: `${a}:8`, why: 'contains "forbidden"' });
    expect(rep.removed['near-duplicate'].examples[0].why).toMatch(new RegExp(`^estimated Jaccard similarity 0\\.\\d\\d with .*b\\.md:1$`));
    expect(rep.redacted.EMAIL.examples[0].text).not.toContain('maker@'); // the report does not leak what was redacted
    expect(rep.skippedFiles).toEqual([{ file: path.join(notes, 'image.bin'), why: 'binary: it has NUL bytes' }]);
    expect(rep.sources).toEqual([{ input: notes, weight: 1, files: 2, documents: 11, kept: 5, written: 5 }]);
    expect(rep.options).toMatchObject({ minWords: 3, maxSymbolRatio: 0.1, nearDup: { threshold: 0.65, numPerm: 128, shingles: 'char:5' } });
    expect(rep.documentsPerSecond).toBeGreaterThan(0);
    expect(tempFiles(dir)).toEqual([]);
  });

  it('keeps one script with --scripts, writes a curriculum with --curriculum length, and can keep PII and duplicates', async () => {
    const out = path.join(dir, 'latin.txt');
    const r = await run('data', 'clean', notes, '-o', out, '--scripts', 'Latin', '--curriculum', 'length');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/removed: .*script 1/);
    const kept = lines(out);
    expect(kept.some((l) => l.includes('开发板'))).toBe(false);
    expect(kept).toHaveLength(5); // the blocklisted line is back
    expect(kept.map((l) => l.length)).toEqual(kept.map((l) => l.length).sort((x, y) => x - y));
    const raw = await run('data', 'clean', notes, '-o', out, '--no-redact', '--no-dedup');
    expect(raw.code).toBe(0);
    expect(lines(out)).toContain('Contact me at maker@example.com or +1 555 123 4567 for the board files.');
    expect(lines(out)).toContain('the esp32-s3 has two cores, and runs at up to 240 MHz!');
  });

  it('with --doc-per file, joins each file into one document and cuts lines repeated across files', async () => {
    const footer = 'Posted by the maker. Comments are closed on this page.';
    const docs = path.join(dir, 'posts');
    write('posts/1.txt', `Today I flashed the board.\nIt worked the first time.\n${footer}\n`);
    write('posts/2.txt', `The LED blinks twice a second.\n\n${footer}\n`);
    write('posts/3.txt', `${footer}\n`); // nothing left once the footer is cut
    write('posts/4.txt', `A case printed in PLA, with a sliding lid.\n${footer}`);
    write('posts/5.txt', ' \n\t\n');
    const out = path.join(dir, 'posts.txt');
    const report = path.join(dir, 'posts.json');
    // a high near-duplicate threshold: 3.txt is otherwise a near-duplicate of 2.txt, which is a footer and a short line
    const r = await run('data', 'clean', docs, '--doc-per', 'file', '-o', out, '--report', report, '--near-dup-threshold', '0.95');
    expect(r.code).toBe(0);
    expect(lines(out)).toEqual([`Today I flashed the board. It worked the first time. ${footer}`, 'The LED blinks twice a second.', 'A case printed in PLA, with a sliding lid.']);
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    expect(rep.repeatedSegments.count).toBe(3);
    expect(rep.repeatedSegments.examples[0]).toEqual({ where: path.join(docs, '2.txt'), text: footer });
    expect(rep.removed).toEqual({
      'repeated-segments': { count: 1, examples: [{ where: path.join(docs, '3.txt'), text: footer, why: '1 of 1 segments are in earlier documents' }] },
      empty: { count: 1, examples: [{ where: path.join(docs, '5.txt'), text: '' }] },
    });
    // sentences as segments: the footer's are 20 and 33 characters, both below the default 40
    const bySentence = await run('data', 'clean', docs, '--doc-per', 'file', '-o', out, '--repeated-segments', 'sentence', '--segment-min-chars', '20', '--near-dup-threshold', '0.95');
    expect(bySentence.code).toBe(0);
    expect(lines(out)[1]).toBe('The LED blinks twice a second.');
    const off = await run('data', 'clean', docs, '--doc-per', 'file', '-o', out, '--repeated-segments', 'off', '--near-dup-threshold', '0.95');
    expect(off.code).toBe(0);
    expect(lines(out)[1]).toBe(`The LED blinks twice a second. ${footer}`);
  });

  it('fails with a clear message and a non-zero exit, leaving no output, on a missing input or a bad option', async () => {
    const out = path.join(dir, 'fail.txt');
    const cases: [string[], RegExp][] = [
      [['data', 'clean', path.join(dir, 'missing.txt'), '-o', out], /cannot read .*missing\.txt: no such file or folder/],
      [['data', 'clean', notes, path.join(dir, 'gone'), '-o', out], /cannot read .*gone: no such file or folder/],
      [['data', 'clean', '-o', out], /give at least one input file or folder/],
      [['data', 'clean', notes, '-o', out, '--scripts', 'Klingon'], /unknown script "Klingon"/],
      [['data', 'clean', notes, '-o', out, '--blocklist', path.join(dir, 'nolist.txt')], /cannot read the blocklist .*nolist\.txt: no such file/],
      [['data', 'clean', notes, '-o', out, '--min-words', '10', '--max-words', '5'], /--min-words 10 is above --max-words 5/],
      [['data', 'clean', notes, '-o', out, '--min-script-share', '0.5'], /--min-script-share goes with --scripts/],
      [['data', 'clean', notes, '-o', out, '--curriculum', 'length', '--temp-dir', path.join(dir, 'nowhere')], /--temp-dir .*nowhere: no such folder/],
      [['data', 'clean', notes, '-o', path.join(dir, 'no/such/dir/out.txt')], /folder .* does not exist/],
      [['data', 'clean', notes, '-o', notes], /cannot write .*notes: it is a folder/],
      [['data', 'clean', notes, '-o', out, '--report', path.join(dir, 'no/such/dir/r.json')], /cannot write .*r\.json: folder .* does not exist/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n'), argv.join(' ')).toHaveLength(1);
      expect(existsSync(out), argv.join(' ')).toBe(false);
    }
    const badOptions: [string[], RegExp][] = [
      [['--doc-per', 'page'], /argument 'page' is invalid. Allowed choices are line, file/],
      [['--near-dup-threshold', '2'], /expected a number from 0.05 to 1/],
      [['--shingles', 'byte:3'], /expected char:N or word:N/],
      [['--min-words', '-1'], /expected a whole number/],
      [['--mix', `${notes}:0`], /the weight must be above 0/],
      [['--curriculum', 'random'], /Allowed choices are none, length/],
      [['--no-such-option'], /unknown option '--no-such-option'/],
    ];
    for (const [extra, message] of badOptions) {
      const r = await run('data', 'clean', notes, '-o', out, ...extra);
      expect(r.code, extra.join(' ')).toBe(1);
      expect(r.err.split('\n')[0]).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
    expect(tempFiles(dir)).toEqual([]);
  });

  it('leaves an existing output untouched when a run fails after cleaning', async () => {
    const out = write('existing.txt', 'the previous corpus\n');
    const r = await run('data', 'clean', notes, '-o', out, '--mix', `${notes}:2`, '--report', path.join(dir, 'missing-dir/r.json'));
    expect(r.code).toBe(1);
    expect(readFileSync(out, 'utf8')).toBe('the previous corpus\n');
    expect(tempFiles(dir)).toEqual([]);
  });
});
