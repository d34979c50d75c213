/**
 * `lmflash flash [--port P] [--firmware BUILD_DIR] [--model BLOB] [--baud B] [--erase-all] [--no-verify]`:
 * firmware and model through the ESP32-S3's boot ROM (host/flash.ts, docs/flashing.md).
 */
import type { Command } from 'commander';
import { flash } from '../flash.js';
import { processIO, type CliIO } from '../io.js';
import { parseBaud } from '../serial.js';

interface FlashOpts {
  port?: string | true;
  firmware?: string;
  model?: string;
  baud: number;
  eraseAll?: boolean;
  verify: boolean;
  compress: boolean;
  skipRamCheck?: boolean;
  verbose?: boolean;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('flash')
    .description('write the firmware and/or a model to an ESP32-S3 through its bootloader, verify it, and restart the board')
    .option('--port [path]', 'the board\'s serial port (no path or no option: the only board plugged in)')
    .option('--firmware <build-dir>', "an ESP-IDF build folder (with flasher_args.json): bootloader, partition table and app; or `virtual`: the virtual board's firmware (`lmflash sim --flash IMAGE`), no ESP-IDF needed")
    .option('-m, --model <blob>', 'a model blob for the `model` partition (alone: only the model is written)')
    .option('--baud <rate>', 'baud rate while writing (the bootloader starts at 115200; USB-Serial-JTAG ignores it)', parseBaud, 460800)
    .option('--erase-all', 'erase the whole flash first (also clears Wi-Fi settings and any old model)')
    .option('--no-verify', 'skip the MD5 comparison of every region after writing')
    .option('--no-compress', 'send the data uncompressed (slower; for measurements)')
    .option('--skip-ram-check', "write a model even if the board esptool detects seems to lack the RAM for it (PSRAM outside the chip package is invisible to esptool)")
    .option('--verbose', "show esptool's own messages")
    .addHelpText(
      'after',
      `
Examples:
  lmflash flash --firmware firmware/esp32s3/build --model model.blob    everything, then the board is ready to chat
  lmflash flash --model model.blob                                      a new model only (the partition table is read from the board)
  lmflash flash --port /dev/pts/N --firmware virtual --model model.blob the virtual board of \`lmflash sim --flash flash.bin\`, without ESP-IDF
If the board does not answer: hold BOOT, press RESET, release BOOT, run again; or try another cable or --baud 115200.`,
    )
    .action(async (opts: FlashOpts) => {
      const r = await flash(
        {
          port: typeof opts.port === 'string' ? opts.port : undefined,
          firmware: opts.firmware,
          model: opts.model,
          baud: opts.baud,
          eraseAll: opts.eraseAll,
          verify: opts.verify,
          compress: opts.compress,
          skipRamCheck: opts.skipRamCheck,
          verbose: opts.verbose,
          progress: true,
          tty: io === processIO && !!process.stderr.isTTY,
        },
        io,
      );
      const written = r.files.filter((f) => f.name !== 'model store journal');
      const bytes = written.reduce((s, f) => s + f.bytes, 0);
      const seconds = r.files.reduce((s, f) => s + f.seconds, 0);
      io.out(
        `flashed ${written.map((f) => f.name).join(', ')} (${bytes.toLocaleString('en')} bytes in ${seconds.toFixed(1)} s${r.files.every((f) => f.verified) ? ', verified' : ''}) on ${r.port}` +
          `${r.resentBlocks ? `; ${r.resentBlocks} damaged block(s) were sent again` : ''}\n` +
          `talk to it: lmflash chat --port ${r.port}\n`,
      );
    });
}
