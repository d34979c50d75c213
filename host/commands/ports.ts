/** `lmflash ports [--json] [--all]`: the serial ports here, likeliest board first. */
import type { Command } from 'commander';
import type { CliIO } from '../io.js';
import { listPorts, type PortEntry } from '../serial.js';

function hex4(n: number | undefined): string {
  return n === undefined ? '----' : n.toString(16).padStart(4, '0');
}

export function formatPorts(ports: PortEntry[]): string {
  if (ports.length === 0)
    return 'no serial ports found: plug the board in with a data USB cable (some cables only charge); on Linux, check `dmesg` for ttyACM/ttyUSB\n';
  const width = Math.max(...ports.map((p) => p.path.length));
  const lines = ports.map((p) => {
    const ids = p.vendorId === undefined ? '   -     ' : `${hex4(p.vendorId)}:${hex4(p.productId)}`;
    const what = [p.guess ?? (p.vendorId === undefined ? 'no USB ids' : 'not a known board adapter'), p.manufacturer].filter(Boolean).join(', ');
    return `${p.path.padEnd(width)}  ${ids}  ${what}`;
  });
  const boards = ports.filter((p) => p.likelihood > 0).length;
  const hint =
    boards === 1
      ? `lmflash uses ${ports[0].path} when you give no --port\n`
      : boards > 1
        ? 'several look like boards: choose one with --port\n'
        : 'none looks like an ESP32 board (USB ids unknown): name the port with --port if it is one\n';
  return lines.join('\n') + '\n' + hint;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('ports')
    .description('list serial ports, likeliest board first (USB vendor:product ids and a guess at the device)')
    .option('--json', 'print the list as JSON')
    .option('--all', 'include the legacy on-board UARTs (/dev/ttyS*) that Linux always lists')
    .action(async (opts: { json?: boolean; all?: boolean }) => {
      const ports = await listPorts({ all: opts.all });
      if (opts.json) {
        io.out(
          JSON.stringify(
            ports.map((p) => ({ ...p, vendorId: p.vendorId === undefined ? null : hex4(p.vendorId), productId: p.productId === undefined ? null : hex4(p.productId) })),
            null,
            2,
          ) + '\n',
        );
        return;
      }
      io.out(formatPorts(ports));
    });
}
