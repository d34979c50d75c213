/**
 * The core on an emulated ESP8266 CPU: builds firmware/ports/qemu-xtensa with
 * Debian's lx106 cross toolchain and runs its images under
 * `qemu-system-xtensa -M sim -cpu lx106` (see that folder's run.sh, which
 * builds the same command line). With `-icount shift=0` the image's cycle
 * counter reports instructions executed, in steps of 25.
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Where the blob goes: __lmf_blob_start in firmware/ports/qemu-xtensa/lmf-qemu.ld. */
export const QEMU_BLOB_ADDR = 0x50400000;

/** What the Xtensa build and QEMU runs need, and the Debian package of each. */
const REQUIREMENTS: { what: string; pkg: string; present: () => boolean }[] = [
  { what: 'xtensa-lx106-elf-gcc', pkg: 'gcc-xtensa-lx106', present: () => onPath('xtensa-lx106-elf-gcc') },
  { what: 'xtensa-lx106-elf-ld', pkg: 'binutils-xtensa-lx106', present: () => onPath('xtensa-lx106-elf-ld') },
  {
    what: 'picolibc for lx106 (/usr/lib/xtensa-lx106-elf/lib/libc.a)',
    pkg: 'picolibc-xtensa-lx106-elf',
    present: () => existsSync('/usr/lib/xtensa-lx106-elf/lib/libc.a'),
  },
  {
    what: "GCC's source (/usr/src/gcc-12/gcc-12*.tar.xz, for libgcc's Xtensa soft-float)",
    pkg: 'gcc-12-source',
    present: () => existsSync('/usr/src/gcc-12') && readdirSync('/usr/src/gcc-12').some((f) => /^gcc-12.*\.tar\.xz$/.test(f)),
  },
  { what: 'xz (to unpack it)', pkg: 'xz-utils', present: () => onPath('xz') },
  { what: 'qemu-system-xtensa', pkg: 'qemu-system-misc', present: () => onPath('qemu-system-xtensa') },
  { what: 'cmake', pkg: 'cmake', present: () => onPath('cmake') },
  { what: 'make', pkg: 'make', present: () => onPath('make') },
];

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface QemuToolchain {
  ok: boolean;
  /** One line per missing piece: what, and the package that brings it. */
  missing: string[];
  /** The command that installs every missing package ('' when none is missing). */
  install: string;
}

export function findQemuToolchain(): QemuToolchain {
  const absent = REQUIREMENTS.filter((r) => !r.present());
  const packages = [...new Set(absent.map((r) => r.pkg))];
  return {
    ok: absent.length === 0,
    missing: absent.map((r) => `${r.what} (Debian package ${r.pkg})`),
    install: packages.length ? `apt-get install -y ${packages.join(' ')}` : '',
  };
}

export interface XtensaImages {
  /** The core's command-line driver: lmf_app_main over semihosting. */
  elf: string;
  /** The port's arithmetic self-test (selftest.c). */
  selftestElf: string;
}

/** The build in progress: concurrent callers share it rather than race in one tree. */
let building: Promise<XtensaImages> | undefined;

/**
 * Configures and builds the port into ROOT/build/xtensa. Incremental: CMake
 * re-globs the core's sources and rebuilds only what changed (well under a
 * second when nothing did).
 */
export function buildXtensa(root: string): Promise<XtensaImages> {
  building ??= (async () => {
    const buildDir = path.join(root, 'build/xtensa');
    const run = async (args: string[]) => {
      try {
        await execFileAsync('cmake', args, { cwd: root, maxBuffer: 64 << 20 });
      } catch (e) {
        const err = e as { stdout?: string; stderr?: string; message: string };
        throw new Error(`cmake ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? err.message}`);
      }
    };
    await run(['-S', path.join(root, 'firmware/ports/qemu-xtensa'), '-B', buildDir]);
    await run(['--build', buildDir, '-j2']);
    return { elf: path.join(buildDir, 'lmf-qemu.elf'), selftestElf: path.join(buildDir, 'lmf-qemu-selftest.elf') };
  })().finally(() => (building = undefined));
  return building;
}

export interface QemuRunOptions {
  elf: string;
  /** Loaded at QEMU_BLOB_ADDR, standing in for the flash partition. */
  blob?: string;
  /** The driver's arguments (argv[1..]); argv[0] is "lmf-qemu". */
  args?: string[];
  /** Kills QEMU and rejects after this long (default 120 s). */
  timeoutMs?: number;
}

export interface QemuRunResult {
  stdout: Buffer;
  stderr: string;
  exitCode: number;
}

/** QEMU's option syntax doubles the commas inside a value. */
const optionValue = (s: string) => s.replaceAll(',', ',,');

function qemuArgs(elf: string, blob: string | undefined, args: string[]): string[] {
  const semihosting = ['enable=on', 'arg=lmf-qemu', ...args.map((a) => `arg=${optionValue(a)}`)].join(',');
  return [
    '-M', 'sim', '-cpu', 'lx106',
    // -serial none: semihosting writes to QEMU's own stdout and stderr, unmixed
    '-nographic', '-monitor', 'none', '-serial', 'none',
    // one instruction per ns of virtual time: CCOUNT (40 MHz) = instructions / 25
    '-icount', 'shift=0',
    '-semihosting-config', semihosting,
    '-kernel', elf,
    ...(blob ? ['-device', `loader,file=${optionValue(blob)},addr=0x${QEMU_BLOB_ADDR.toString(16)}`] : []),
  ];
}

export function runOnQemu({ elf, blob, args = [], timeoutMs = 120_000 }: QemuRunOptions): Promise<QemuRunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-system-xtensa', qemuArgs(elf, blob, args), { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`QEMU still running after ${timeoutMs} ms: ${Buffer.concat(err).toString('utf8')}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === null) return reject(new Error(`QEMU killed by ${signal}`));
      resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), exitCode: code });
    });
  });
}
