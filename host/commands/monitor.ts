/**
 * `lmflash monitor [--port [P]] [--baud B]`: a plain serial monitor. Keys go
 * to the board as typed (raw: Ctrl-C reaches the board, which stops a reply
 * in console mode), the board's output goes to the terminal, Ctrl-] exits.
 * Opening does not reset the board.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Command } from 'commander';
import type { CliIO } from '../io.js';
import { closePort, DEFAULT_BAUD, openPort, parseBaud, resolvePort } from '../serial.js';

/** Ctrl-] (GS): the exit key of telnet and miniterm. */
export const EXIT_KEY = 0x1d;

export function register(program: Command, io: CliIO): void {
  program
    .command('monitor')
    .description('a plain serial monitor: type to the board, see what it prints (Ctrl-] exits; opening does not reset the board)')
    .option('--port [path]', 'the serial port (default: the only board plugged in)')
    .option('--baud <rate>', 'serial baud rate (USB-Serial-JTAG ignores it)', parseBaud, DEFAULT_BAUD)
    .action(async (opts: { port?: string | true; baud: number }) => {
      const portPath = await resolvePort(typeof opts.port === 'string' ? opts.port : undefined);
      const port = await openPort(portPath, { baudRate: opts.baud });
      io.err(`--- ${portPath} at ${opts.baud} baud; Ctrl-] exits ---\n`);
      await monitor(port, io);
      await closePort(port);
      io.err('\n--- monitor closed ---\n');
    });
}

/** Copies stdin to the port and the port to `io.out` until Ctrl-], the port closes or SIGINT (piped stdin). */
function monitor(port: NodeJS.ReadWriteStream & { isOpen: boolean }, io: CliIO): Promise<void> {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  const decoder = new StringDecoder('utf8'); // the console sends whole characters, but chunks may cut them
  return new Promise((resolve) => {
    const onPort = (chunk: Buffer) => io.out(decoder.write(chunk));
    const onKeys = (chunk: Buffer) => {
      const exit = chunk.indexOf(EXIT_KEY);
      if (exit >= 0) {
        if (exit > 0) port.write(chunk.subarray(0, exit));
        return done();
      }
      port.write(chunk);
    };
    const onClose = () => {
      io.err('\n--- the port closed (board unplugged?) ---\n');
      done();
    };
    const done = () => {
      port.off('data', onPort);
      port.off('close', onClose);
      stdin.off('data', onKeys);
      process.off('SIGINT', done);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      // a paused pipe still holds the event loop open: let the process end
      (stdin as NodeJS.ReadStream & { unref?: () => void }).unref?.();
      resolve();
    };
    if (raw) stdin.setRawMode(true);
    port.on('data', onPort);
    port.on('close', onClose);
    stdin.on('data', onKeys);
    process.once('SIGINT', done); // reaches us only when stdin is not a terminal in raw mode
    stdin.resume();
  });
}
