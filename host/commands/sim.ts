/** `lmflash sim [--model M]`: run the virtual board until Ctrl-C, for other programs to talk to. */
import type { Command } from 'commander';
import { LmflashError } from '../../src/errors.js';
import type { CliIO } from '../io.js';
import { startSim } from '../sim.js';
import { parsePositiveInt } from './inspect.js';

export function register(program: Command, io: CliIO): void {
  program
    .command('sim')
    .description("start the virtual board (the board's firmware behind a pseudo-terminal) and serve until Ctrl-C")
    .option('-m, --model <blob>', 'the blob the virtual board runs (default: none; it then answers that it has no model)')
    .option('--arena <bytes>', "RAM the virtual board has for the model's run state (default 524288)", parsePositiveInt)
    .option('--step-delay-us <us>', "slow every forward pass down by this many microseconds (a board's pace is ~100x slower than this computer's)", parsePositiveInt)
    .action(async (opts: { model?: string; arena?: number; stepDelayUs?: number }) => {
      const sim = await startSim({ model: opts.model, arenaBytes: opts.arena, stepDelayUs: opts.stepDelayUs });
      io.out(
        `virtual board serving on ${sim.path} (${opts.model ? `model ${opts.model}` : 'no model'})\n` +
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
