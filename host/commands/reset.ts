/**
 * `lmflash reset [--port P]`: restart a board into its firmware, e.g. one an
 * interrupted flash or another tool left in its bootloader's download mode
 * (EN pulsed with IO0 released, as `flash` does at the end; host/flash.ts).
 */
import type { Command } from 'commander';
import { resetBoard } from '../flash.js';
import type { CliIO } from '../io.js';

export function register(program: Command, io: CliIO): void {
  program
    .command('reset')
    .description('restart the board into its firmware (out of the bootloader\'s download mode, e.g. after an interrupted flash)')
    .option('--port [path]', 'the board\'s serial port (no path or no option: the only board plugged in)')
    .action(async (opts: { port?: string | true }) => {
      await resetBoard({ port: typeof opts.port === 'string' ? opts.port : undefined }, io);
    });
}
