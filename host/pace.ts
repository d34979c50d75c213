/**
 * A board's pace for the virtual board (`--pace s3-n8r2`): the virtual board
 * answers as fast as this computer runs the core (100,000+ tok/s on an
 * N-gram), which says nothing about a board and leaves no time to try Ctrl-C.
 * With a pace, every forward pass waits for the time the board profile's cost
 * model estimates (src/boards.ts, `inspect --board`; docs/hardware.md), so
 * replies arrive at the speed a board would give.
 */
import { checkModelFitsBoard, findBoard, planAnyOnBoard } from '../src/boards.js';
import { LmflashError } from '../src/errors.js';
import { readAnyBlobFile } from './commands/inspect.js';
import type { CliIO } from './io.js';

export interface Pace {
  board: string;
  /** the profile's estimate at position 0 */
  tokensPerSecond: number;
  /** what lmf-sim waits per forward pass (--step-delay-us) */
  stepDelayUs: number;
}

/** `off` (or none): full speed. */
export const PACE_OFF = 'off';

/** The estimated pace of `model` on board profile `boardId`; an error when the model cannot run there. */
export async function paceFor(model: string, boardId: string): Promise<Pace> {
  const board = findBoard(boardId);
  const blob = await readAnyBlobFile(model);
  const problems = checkModelFitsBoard(blob.view, board);
  if (problems.length > 0)
    throw new LmflashError(`--pace ${board.id}: ${model} cannot run on that board (${problems.map((p) => p.message).join('; ')}); choose another profile or --pace off`);
  const speed = planAnyOnBoard(blob.view, board).speed;
  if (!speed) throw new LmflashError(`--pace ${board.id}: no speed estimate for ${model} on that board; choose another profile or --pace off`);
  return { board: board.id, tokensPerSecond: speed.atStart, stepDelayUs: Math.max(1, Math.round(1e6 / speed.atStart)) };
}

/** The line the commands print so that nobody takes the paced speed for this computer's. */
export function describePace(p: Pace): string {
  return `virtual board paced like an ${p.board} board: ~${p.tokensPerSecond.toFixed(0)} tok/s (estimate from docs/hardware.md's cost model; --pace off for full speed)`;
}

/** Reads a --pace value for commands that run the virtual board: a board profile, or off. */
export function parsePaceOption(value: string | undefined, sim: boolean | undefined): string | undefined {
  if (value === undefined || value === PACE_OFF) return undefined;
  if (!sim) throw new LmflashError('--pace slows the virtual board: it goes with --sim (a real board has its own pace)');
  findBoard(value); // an unknown profile fails here, listing the known ones
  return value;
}

/**
 * For chat and generate: the virtual board's step delay for `--pace` (none
 * without it), after telling stderr the pace it runs at.
 */
export async function simStepDelay(opts: { pace?: string; sim?: boolean; model?: string }, io: CliIO): Promise<number | undefined> {
  const board = parsePaceOption(opts.pace, opts.sim);
  if (!board) return undefined;
  if (!opts.model) throw new LmflashError('--pace needs the model the virtual board runs (--model): the pace is that model\'s on the board');
  const pace = await paceFor(opts.model, board);
  io.err(describePace(pace) + '\n');
  return pace.stepDelayUs;
}

export const PACE_HELP = "with --sim: answer at the estimated speed of this board profile (s3-n8r2, ...; inspect --board shows it), or off";
