/**
 * The one progress bar of every long command (flash, model upload, eval,
 * convert, train ngram, tokenizer train, data clean): a bar with a rate and
 * an ETA, redrawn in place on stderr when stderr is a terminal. Output that is
 * not a terminal (a log, a test's captured stream) gets no bar unless the
 * command asks for `logLines`, one line every 10 % (flash and upload keep
 * those, their logs are read after the fact).
 */
import { processIO, type CliIO } from './io.js';

/** A terminal's "erase to the end of the line": a shorter redraw leaves nothing of the longer one behind. */
const ERASE_TO_EOL = '\x1b[K';
const REDRAW_MS = 100;
const BAR_WIDTH = 24;

export interface ProgressOptions {
  /** true: redraw in place (a terminal); false: no bar, or log lines with `logLines` */
  tty: boolean;
  /** what is counted: 'bytes' shows KiB and KiB/s, any other word is a count of those ("positions") */
  unit?: string;
  /** without a terminal, one line every 10 % instead of nothing */
  logLines?: boolean;
  /** draw nothing until the task has run this long (a quick run stays silent); default 0 */
  delayMs?: number;
}

/** Whether the command's stderr is a terminal: only the real process streams can be. */
export function stderrIsTty(io: CliIO): boolean {
  return io === processIO && process.stderr.isTTY === true;
}

function kib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');

/** Seconds for a human: "4 s", "2 min 05 s". */
export function formatSeconds(s: number, decimals = 0): string {
  if (s < 60) return `${s.toFixed(decimals)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.floor(s - 60 * m)).padStart(2, '0')} s`;
}

/** The bar's text for `done` of `total` after `seconds` (exported for tests). */
export function progressLine(label: string, done: number, total: number, seconds: number, final: boolean, unit = 'bytes'): string {
  const frac = total > 0 ? Math.min(done / total, 1) : 1;
  const filled = Math.round(frac * BAR_WIDTH);
  const rate = done / Math.max(seconds, 1e-3);
  const eta = rate > 0 ? (total - done) / rate : 0;
  const amount = unit === 'bytes' ? kib(total) : `${count(done)}/${count(total)} ${unit}`;
  const speed = unit === 'bytes' ? `${(rate / 1024).toFixed(1)} KiB/s` : `${count(rate)} ${unit}/s`;
  const time = final ? formatSeconds(seconds, 1) : `ETA ${formatSeconds(eta)}`;
  return `${label.padEnd(20)} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${amount}  ${speed}  ${time}`;
}

/** A bar per task: `begin()`, `update(label, done, total)` as often as you like (it draws at most every 100 ms), then one `final` update. */
export class Progress {
  private start = 0;
  private lastDraw = 0;
  private lastTenth = -1;
  private drawn = false;
  private readonly opts: ProgressOptions;

  constructor(
    private readonly io: CliIO,
    tty: boolean | ProgressOptions,
  ) {
    this.opts = typeof tty === 'boolean' ? { tty, logLines: true } : tty;
    this.begin();
  }

  /** LMFLASH_PROGRESS_DELAY_MS overrides the delay (0: bars even on quick runs, e.g. to see or test them) */
  private get delayMs(): number {
    const env = Number(process.env.LMFLASH_PROGRESS_DELAY_MS);
    return process.env.LMFLASH_PROGRESS_DELAY_MS !== undefined && Number.isFinite(env) ? env : (this.opts.delayMs ?? 0);
  }

  /** Whether anything will ever be drawn (callers may skip their own bookkeeping when not). */
  get visible(): boolean {
    return this.opts.tty || this.opts.logLines === true;
  }

  begin(): void {
    this.start = performance.now();
    this.lastDraw = 0;
    this.lastTenth = -1;
    this.drawn = false;
  }

  update(label: string, done: number, total: number, final = false): void {
    if (!this.visible) return;
    const now = performance.now();
    if (!this.drawn && now - this.start < this.delayMs) return; // quick so far (and maybe to the end)
    const tenth = total ? Math.floor((10 * done) / total) : 10;
    // a terminal redraws the bar in place; a log gets a line every 10 %
    if (!final && (this.opts.tty ? now - this.lastDraw < REDRAW_MS : tenth === this.lastTenth || tenth === 0)) return;
    this.lastTenth = tenth;
    this.lastDraw = now;
    this.drawn = true;
    const text = progressLine(label, done, total, (now - this.start) / 1000, final, this.opts.unit);
    this.io.err(this.opts.tty ? `\r${text}${ERASE_TO_EOL}${final ? '\n' : ''}` : `${text}\n`);
  }

  /** Removes an unfinished bar from the terminal (before an error message, say). */
  clear(): void {
    if (this.opts.tty && this.drawn) this.io.err(`\r${ERASE_TO_EOL}`);
  }
}

/**
 * Counts the steps of one task of known size onto a bar, reading the clock
 * only every `checkEvery` steps to keep it off a hot loop.
 */
export class ProgressCounter {
  private done = 0;
  private nextCheck: number;

  constructor(
    private readonly bar: Progress | null,
    private readonly label: string,
    private readonly total: number,
    private readonly checkEvery = 256,
  ) {
    this.nextCheck = checkEvery;
  }

  step(n = 1): void {
    this.done += n;
    if (this.done < this.nextCheck || !this.bar) return;
    this.nextCheck = this.done + this.checkEvery;
    this.bar.update(this.label, this.done, this.total);
  }

  finish(): void {
    this.bar?.update(this.label, this.done, this.total, true);
  }
}

/**
 * A line of status for work of unknown size (documents read so far, say):
 * redrawn in place on a terminal, one line per update in a log.
 */
export class StatusLine {
  private shown = false;
  constructor(
    private readonly io: CliIO,
    private readonly tty: boolean,
  ) {}

  show(text: string): void {
    const line = text.trimEnd();
    if (!this.tty) return this.io.err(`${line}\n`);
    this.io.err(`\r${line}${ERASE_TO_EOL}`);
    this.shown = true;
  }

  /** Ends the redrawn line so that what follows starts on a line of its own. */
  end(): void {
    if (this.shown) this.io.err('\n');
    this.shown = false;
  }
}
