/**
 * The core on emulated Xtensa CPUs:
 *  - the ESP8266's lx106: builds firmware/ports/qemu-xtensa with Debian's lx106
 *    cross toolchain and runs its images under `qemu-system-xtensa -M sim
 *    -cpu lx106` (see that folder's run.sh, which builds the same command line);
 *  - the ESP32-S3's LX7 with its FPU and PIE: builds firmware/ports/qemu-esp32s3
 *    with the toolchain in ../shared/toolchains/esp32s3 and runs it under that
 *    folder's QEMU (`-M sim -cpu esp32s3`, Espressif's PIE model).
 * With `-icount shift=0` the images' cycle counter reports instructions
 * executed, in steps of 25.
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Where the blob goes: __lmf_blob_start in firmware/ports/qemu-common/lmf-qemu.ld. */
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
    await cmake(root, ['-S', path.join(root, 'firmware/ports/qemu-xtensa'), '-B', buildDir]);
    await cmake(root, ['--build', buildDir, '-j2']);
    return { elf: path.join(buildDir, 'lmf-qemu.elf'), selftestElf: path.join(buildDir, 'lmf-qemu-selftest.elf') };
  })().finally(() => (building = undefined));
  return building;
}

async function cmake(root: string, args: string[]): Promise<void> {
  try {
    await execFileAsync('cmake', args, { cwd: root, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`cmake ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? err.message}`);
  }
}

// ---- ESP32-S3 --------------------------------------------------------------

export interface Esp32s3Toolchain extends QemuToolchain {
  /** ../shared/toolchains/esp32s3 from the project root. */
  dir: string;
  /** Its qemu-system-xtensa, built with Espressif's ESP32-S3 PIE model. */
  qemu: string;
  /** Its binutils: xtensa-esp32s3-elf-as, -objdump. */
  as: string;
  objdump: string;
  gcc: string;
}

/** The ESP32-S3 toolchain beside the project, and what is missing for the port's build and runs. */
export function findEsp32s3Toolchain(root: string): Esp32s3Toolchain {
  const dir = path.resolve(root, '../shared/toolchains/esp32s3');
  const bin = (tool: string) => path.join(dir, 'xtensa-esp32s3-elf/bin', `xtensa-esp32s3-elf-${tool}`);
  const qemu = path.join(dir, 'qemu/qemu-system-xtensa');
  const requirements: { what: string; fix: string; present: () => boolean }[] = [
    { what: `the ESP32-S3 toolchain (${dir})`, fix: 'put it at ../shared/toolchains/esp32s3 (see its README.md)', present: () => existsSync(bin('gcc')) && existsSync(bin('as')) && existsSync(bin('objdump')) },
    { what: `its QEMU (${qemu})`, fix: 'the same folder', present: () => existsSync(qemu) },
    {
      what: "picolibc's lx106 headers (/usr/lib/xtensa-lx106-elf/include), used for <string.h>",
      fix: 'apt-get install -y picolibc-xtensa-lx106-elf',
      present: () => existsSync('/usr/lib/xtensa-lx106-elf/include/string.h'),
    },
    { what: 'cmake', fix: 'apt-get install -y cmake', present: () => onPath('cmake') },
    { what: 'make', fix: 'apt-get install -y make', present: () => onPath('make') },
  ];
  const absent = requirements.filter((r) => !r.present());
  return {
    ok: absent.length === 0,
    missing: absent.map((r) => r.what),
    install: [...new Set(absent.map((r) => r.fix))].join('; '),
    dir,
    qemu,
    as: bin('as'),
    objdump: bin('objdump'),
    gcc: bin('gcc'),
  };
}

export interface Esp32s3Images {
  /** The core's driver with the PIE kernels (kernels_esp32s3.S) and the hardware FPU. */
  elf: string;
  /** The same core with the C kernels, for the benchmark's comparison. */
  plainElf: string;
  /** The arithmetic self-test (ports/qemu-common/selftest.c). */
  selftestElf: string;
  /** The S3's scalar assembly kernels against their C definitions (ports/qemu-esp32s3/kernel-check.c). */
  kernelCheckElf: string;
  /** How to run them (runOnQemu's target). */
  target: QemuTarget;
}

let buildingS3: Promise<Esp32s3Images> | undefined;

/** Configures and builds firmware/ports/qemu-esp32s3 into ROOT/build/esp32s3 (incremental). */
export function buildEsp32s3(root: string): Promise<Esp32s3Images> {
  buildingS3 ??= (async () => {
    const tc = findEsp32s3Toolchain(root);
    if (!tc.ok) throw new Error(`cannot build the ESP32-S3 image: missing ${tc.missing.join('; ')}; fix: ${tc.install}`);
    const buildDir = path.join(root, 'build/esp32s3');
    await cmake(root, ['-S', path.join(root, 'firmware/ports/qemu-esp32s3'), '-B', buildDir, `-DLMF_ESP32S3_TOOLCHAIN=${tc.dir}`]);
    await cmake(root, ['--build', buildDir, '-j2']);
    return {
      elf: path.join(buildDir, 'lmf-qemu.elf'),
      plainElf: path.join(buildDir, 'lmf-qemu-c.elf'),
      selftestElf: path.join(buildDir, 'lmf-qemu-selftest.elf'),
      kernelCheckElf: path.join(buildDir, 'lmf-qemu-kernel-check.elf'),
      target: esp32s3Target(tc),
    };
  })().finally(() => (buildingS3 = undefined));
  return buildingS3;
}

/** Which QEMU runs an image, as which CPU, and how the blob gets in. */
export interface QemuTarget {
  qemu: string;
  cpu: 'lx106' | 'esp32s3';
  /**
   * 'device': -device loader puts the blob at QEMU_BLOB_ADDR (Debian's QEMU);
   * 'semihosting': the image reads it there itself (--load-blob FILE, for the
   * ESP32-S3 QEMU, built without the loader device).
   */
  blobLoad: 'device' | 'semihosting';
}

export const LX106_TARGET: QemuTarget = { qemu: 'qemu-system-xtensa', cpu: 'lx106', blobLoad: 'device' };

export function esp32s3Target(tc: Esp32s3Toolchain): QemuTarget {
  return { qemu: tc.qemu, cpu: 'esp32s3', blobLoad: 'semihosting' };
}

export interface QemuRunOptions {
  elf: string;
  /** Loaded at QEMU_BLOB_ADDR, standing in for the flash partition. */
  blob?: string;
  /** The driver's arguments (argv[1..]); argv[0] is "lmf-qemu". */
  args?: string[];
  /** Kills QEMU and rejects after this long (default 120 s). */
  timeoutMs?: number;
  /** Which emulator and CPU (default the lx106 on Debian's QEMU). */
  target?: QemuTarget;
}

export interface QemuRunResult {
  stdout: Buffer;
  stderr: string;
  exitCode: number;
}

/** QEMU's option syntax doubles the commas inside a value. */
const optionValue = (s: string) => s.replaceAll(',', ',,');

function qemuArgs(target: QemuTarget, elf: string, blob: string | undefined, args: string[]): string[] {
  const viaSemihosting = blob && target.blobLoad === 'semihosting';
  // the image's main.c reads "--load-blob FILE" before the driver's arguments
  const argv = ['lmf-qemu', ...(viaSemihosting ? ['--load-blob', path.resolve(blob)] : []), ...args];
  const semihosting = ['enable=on', ...argv.map((a) => `arg=${optionValue(a)}`)].join(',');
  return [
    '-M', 'sim', '-cpu', target.cpu,
    // -serial none: semihosting writes to QEMU's own stdout and stderr, unmixed
    '-nographic', '-monitor', 'none', '-serial', 'none',
    // one instruction per ns of virtual time: CCOUNT (40 MHz) = instructions / 25
    '-icount', 'shift=0',
    '-semihosting-config', semihosting,
    '-kernel', elf,
    ...(blob && !viaSemihosting ? ['-device', `loader,file=${optionValue(blob)},addr=0x${QEMU_BLOB_ADDR.toString(16)}`] : []),
  ];
}

export function runOnQemu({ elf, blob, args = [], timeoutMs = 120_000, target = LX106_TARGET }: QemuRunOptions): Promise<QemuRunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(target.qemu, qemuArgs(target, elf, blob, args), { stdio: ['ignore', 'pipe', 'pipe'] });
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
