/**
 * `lmflash sim [--model M]`: run the virtual board until Ctrl-C, for other
 * programs to talk to. `--flash IMAGE` runs the flashable one instead: a
 * flash image file that `lmflash flash` writes firmware and model into, and
 * that the board boots from.
 */
import type { Command } from 'commander';
import { LmflashError } from '../../src/errors.js';
import type { CliIO } from '../io.js';
import { startFlashSim } from '../flash-sim.js';
import { startSim } from '../sim.js';
import { parsePositiveInt } from '../option-parsers.js';

export function register(program: Command, io: CliIO): void {
  program
    .command('sim')
    .description("start the virtual board (the board's firmware behind a pseudo-terminal) and serve until Ctrl-C")
    .option('-m, --model <blob>', 'the blob the virtual board runs (default: none; it then answers that it has no model)')
    .option('--arena <bytes>', "RAM the virtual board has for the model's run state (default 524288)", parsePositiveInt)
    .option('--step-delay-us <us>', "slow every forward pass down by this many microseconds (a board's pace is ~100x slower than this computer's)", parsePositiveInt)
    .option('--flash <image>', 'run the flashable virtual board on this flash image file (created, erased, when missing): flash it with `lmflash flash --port …`')
    .option('--flash-size <size>', 'size of a new flash image: 4MB, 8MB or 16MB', '4MB')
    .action(async (opts: { model?: string; arena?: number; stepDelayUs?: number; flash?: string; flashSize: string }) => {
      if (opts.flash && opts.model) throw new LmflashError('--flash and --model are alternatives: a flashable board runs the model flashed into its image');
      if (!['4MB', '8MB', '16MB'].includes(opts.flashSize)) throw new LmflashError(`--flash-size must be 4MB, 8MB or 16MB, not ${opts.flashSize}`);
      const sim = opts.flash
        ? await startFlashSim({ image: opts.flash, flashSize: opts.flashSize })
        : await startSim({ model: opts.model, arenaBytes: opts.arena, stepDelayUs: opts.stepDelayUs });
      const what = opts.flash ? `flash image ${opts.flash}` : opts.model ? `model ${opts.model}` : 'no model';
      io.out(
        `virtual board serving on ${sim.path} (${what})\n` +
          (opts.flash ? `flash it (no ESP-IDF needed):\n  lmflash flash --port ${sim.path} --firmware virtual --model MODEL.blob\n` : '') +
          'talk to it with:\n' +
          `  lmflash chat --port ${sim.path}\n` +
          `  lmflash generate --port ${sim.path} -p "Once upon a time"\n` +
          `  screen ${sim.path} 115200      (console mode; quit screen with Ctrl-A k)\n` +
          'Ctrl-C stops it.\n',
      );
      const stoppedByItself = await new Promise<boolean>((resolve) => {
        const stop = () => {
          sim.process.off('exit', onExit);
          resolve(false);
        };
        const onExit = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve(true);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        sim.process.once('exit', onExit);
      });
      if (stoppedByItself) throw new LmflashError('the virtual board stopped by itself (a crash?): run `lmflash sim` again');
      await sim.stop();
    });
}
