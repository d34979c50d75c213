/**
 * The training progress line: step, a bar, loss, validation loss, tokens/s
 * and ETA. Redrawn in place on a terminal (at most 5 times a second); in a
 * log, a line every 5 % and at every validation.
 */
import { checkpointBytes, runSession, type Session } from '../converter/train/session.js';
import type { LogEntry } from '../converter/train/trainer.js';
import { writeFileAtomic } from '../src/atomic-write.js';
import type { CliIO } from './io.js';

function duration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

export class TrainProgress {
  private lastDraw = 0;
  private lastTwentieth = -1;
  private val = '';
  private readonly t0 = performance.now();
  private readonly firstStep: number;
  private tokens0: number | null = null;

  constructor(
    private readonly io: CliIO,
    private readonly tty: boolean,
    private readonly total: number,
    startStep: number,
  ) {
    this.firstStep = startStep;
  }

  step(e: LogEntry, force = false): void {
    const now = performance.now();
    const twentieth = Math.floor((20 * e.step) / this.total);
    if (this.tokens0 === null) this.tokens0 = e.tokens - (e.tokens / e.step);
    if (!force && (this.tty ? now - this.lastDraw < 200 && e.step < this.total : twentieth === this.lastTwentieth)) return;
    this.lastDraw = now;
    this.lastTwentieth = twentieth;
    const seconds = (now - this.t0) / 1000;
    const done = e.step - this.firstStep;
    const rate = (e.tokens - (this.tokens0 ?? 0)) / Math.max(seconds, 1e-3);
    const eta = done > 0 ? ((this.total - e.step) * seconds) / done : NaN;
    const width = 20;
    const filled = Math.round((e.step / this.total) * width);
    const text =
      `step ${String(e.step).padStart(String(this.total).length)}/${this.total} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` +
      `loss ${e.loss.toFixed(3)}${this.val}  ${rate.toFixed(0)} tok/s  ${e.step >= this.total ? `${duration(seconds)}` : `ETA ${duration(eta)}`}`;
    this.io.err(this.tty ? `\r${text}\x1b[K` : `${text}\n`);
  }

  validation(e: LogEntry, improved: boolean): void {
    if (e.valLoss === undefined) return;
    this.val = `  val ${e.valLoss.toFixed(3)}${improved ? '*' : ' '}`;
    this.step(e, true);
  }

  end(): void {
    if (this.tty) this.io.err('\n');
  }
}

/**
 * Runs a training session to its end or to Ctrl-C with the progress line:
 * a checkpoint at every validation (and the best one beside it), and once
 * more at the end, so an interrupted run resumes where it stopped. Ctrl-C
 * only asks the loop to stop after its step; the command then writes its
 * outputs and exits 130.
 */
export async function runWithCheckpoints(
  io: CliIO, session: Session, steps: number, paths: { checkpoint: string; best: string }, writeLog: () => Promise<void>,
): Promise<{ stopped: boolean }> {
  const t = session.trainer;
  let stop = false;
  const onSigint = () => {
    stop = true;
  };
  process.on('SIGINT', onSigint);
  const progress = new TrainProgress(io, Boolean(process.stderr.isTTY), steps, t.state.step);
  let result: { stopped: boolean };
  try {
    result = await runSession(session, {
      onStep: (e) => progress.step(e),
      onValidate: async (e, improved) => {
        progress.validation(e, improved);
        await writeFileAtomic(paths.checkpoint, checkpointBytes(session));
        if (improved) await writeFileAtomic(paths.best, checkpointBytes(session));
        await writeLog();
      },
      shouldStop: () => stop,
    });
  } finally {
    process.off('SIGINT', onSigint);
    t.close();
  }
  progress.end();
  await writeFileAtomic(paths.checkpoint, checkpointBytes(session));
  await writeLog();
  return result;
}
