/**
 * The ESP-IDF project (firmware/esp32s3) as far as it can be checked without
 * ESP-IDF: its C sources compile against transcriptions of the ESP-IDF v5.4
 * headers it uses (firmware/tests/idf-stubs), the core's CMakeLists survives
 * ESP-IDF's early-expansion pass (CMake script mode), the configuration files
 * say what docs/hardware.md says, every ESP-IDF call is in the list of
 * verified APIs, and the CI workflow builds in Espressif's container. The real
 * build is .github/workflows/firmware.yml.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { storiesBlob, tempDir } from './native-helpers.js';
import { PROJECT_ROOT } from './paths.js';

const ESP = path.join(PROJECT_ROOT, 'firmware/esp32s3');
const STUBS = path.join(PROJECT_ROOT, 'firmware/tests/idf-stubs');
const CORE = path.join(PROJECT_ROOT, 'firmware/core');
const read = (...p: string[]) => readFileSync(path.join(...p), 'utf8');
const mainSources = () => readdirSync(path.join(ESP, 'main')).filter((f) => f.endsWith('.c'));

function sdkconfig(lines: Record<string, string | number>): string {
  const dir = tempDir('sdkconfig');
  writeFileSync(path.join(dir, 'sdkconfig.h'), Object.entries(lines).map(([k, v]) => `#define CONFIG_${k} ${v}\n`).join(''));
  return dir;
}

function syntaxCheck(sdkDir: string, extra: string[] = []): { status: number; stderr: string } {
  const r = spawnSync(
    'gcc',
    ['-std=gnu17', '-fsyntax-only', '-Wall', '-Wextra', '-Wshadow', '-Werror', '-I', sdkDir, '-I', STUBS, '-I', path.join(CORE, 'include'), ...extra,
      ...mainSources().map((f) => path.join(ESP, 'main', f))],
    { encoding: 'utf8' },
  );
  return { status: r.status ?? -1, stderr: r.stderr };
}

const COMMON = { LMF_CONTEXT: 0, LMF_INTERNAL_RESERVE_KB: 32, LMF_BOARD_NAME: '"ESP32-S3"', FREERTOS_HZ: 1000 };

describe('firmware/esp32s3 sources', () => {
  it('compile against the ESP-IDF declarations: USB-Serial-JTAG line, two cores', () => {
    const r = syntaxCheck(sdkconfig({ ...COMMON, LMF_SERIAL_USB_SERIAL_JTAG: 1, ESP_CONSOLE_USB_SERIAL_JTAG: 1, LMF_TWO_CORES: 1, LMF_PARALLEL_MIN_MACS: 2048 }));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('compile against the ESP-IDF declarations: UART0 line and console, one core, 100 Hz ticks', () => {
    const r = syntaxCheck(sdkconfig({ ...COMMON, FREERTOS_HZ: 100, LMF_SERIAL_UART0: 1, LMF_UART_BAUD: 115200, ESP_CONSOLE_UART: 1, ESP_CONSOLE_UART_NUM: 0 }));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('every ESP-IDF call is declared in the stubs and listed as verified in docs/hardware.md', () => {
    const code = mainSources().map((f) => read(ESP, 'main', f)).join('\n');
    const calls = new Set(
      [...code.matchAll(/\b((?:esp|heap_caps|usb_serial_jtag|uart|xTask|ulTask|vTask)[A-Za-z0-9_]*)\s*\(/g)].map((m) => m[1]),
    );
    calls.delete('esp_log_level_set'); // checked below with the rest, kept explicit for readability
    calls.add('esp_log_level_set');
    const stubs = readdirSync(STUBS, { recursive: true })
      .filter((f) => String(f).endsWith('.h'))
      .map((f) => read(STUBS, String(f)))
      .join('\n');
    const doc = read(PROJECT_ROOT, 'docs/hardware.md');
    expect(calls.size).toBeGreaterThan(15);
    for (const fn of calls) {
      expect(stubs, `${fn} is not in firmware/tests/idf-stubs`).toMatch(new RegExp(`\\b${fn}\\b`));
      expect(doc, `${fn} is not in docs/hardware.md's verified APIs`).toContain(`\`${fn}\``);
    }
  });

  it('the core component survives ESP-IDF early expansion (CMake script mode) and registers every source', () => {
    // What tools/cmake/scripts/component_get_requirements.cmake does: include the
    // component's CMakeLists.txt in script mode with idf_component_register
    // recording its arguments and returning.
    const dir = tempDir('early');
    const out = path.join(dir, 'out.txt');
    const script = (cmakeLists: string) => {
      const s = path.join(dir, 'early.cmake');
      writeFileSync(
        s,
        [
          'set(ESP_PLATFORM 1)',
          'set(CMAKE_BUILD_EARLY_EXPANSION 1)',
          'macro(idf_component_register)',
          '  cmake_parse_arguments(_ "" "" "SRCS;INCLUDE_DIRS;REQUIRES;PRIV_REQUIRES" ${ARGN})',
          `  file(WRITE "${out}" "\${__SRCS}|\${__INCLUDE_DIRS}")`,
          '  return()',
          'endmacro()',
          `include("${cmakeLists}")`,
          `file(APPEND "${out}" "|after-register-ran")`,
        ].join('\n'),
      );
      return spawnSync('cmake', ['-P', s], { encoding: 'utf8' });
    };
    const r = script(path.join(CORE, 'CMakeLists.txt'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [srcs, inc] = readFileSync(out, 'utf8').split('|');
    const cFiles = readdirSync(path.join(CORE, 'src')).filter((f) => f.endsWith('.c'));
    expect(srcs.split(';').map((f) => path.basename(f)).sort()).toEqual(cFiles.sort());
    expect(inc).toBe('include');
    // negative control: a CONFIGURE_DEPENDS glob, as the file had before, fails there
    const bad = path.join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(path.join(bad, 'CMakeLists.txt'), 'file(GLOB S CONFIGURE_DEPENDS "*.c")\nidf_component_register(SRCS ${S})\n');
    const f = script(path.join(bad, 'CMakeLists.txt'));
    expect(f.status).not.toBe(0);
    expect(f.stderr).toMatch(/CONFIGURE_DEPENDS is invalid for script/);
  });

  it('builds the PIE kernel and defines LMF_PIE_KERNELS only for the esp32s3 target', () => {
    const cm = read(CORE, 'CMakeLists.txt');
    expect(cm).toMatch(/if\(lmf_target STREQUAL "esp32s3"\)\s*\n\s*#[^\n]*\n\s*target_sources\(\$\{COMPONENT_LIB\} PRIVATE "\$\{CMAKE_CURRENT_LIST_DIR\}\/src\/kernels_esp32s3\.S"\)\s*\n\s*target_compile_definitions\(\$\{COMPONENT_LIB\} PRIVATE LMF_PIE_KERNELS=1\)/);
    const asm = read(CORE, 'src/kernels_esp32s3.S');
    const ops = new Set(
      asm
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('.') && !l.endsWith(':'))
        .map((l) => l.split(/\s+/)[0]),
    );
    // the instruction forms esp-nn's esp_nn_dot_s8_esp32s3.S uses (rur.accx_0 in its aligned kernel), and base
    // Xtensa LX7 (tests/esp32s3-qemu.test.ts assembles the file and checks the forms themselves)
    const known = new Set(['entry', 'movi.n', 'addi.n', 'mov.n', 'ee.zero.accx', 'ee.vld.128.ip', 'loopgtz', 'ee.vmulas.s8.accx.ld.ip',
      'ee.vmulas.s8.accx', 'nop', 'ee.srs.accx', 'rur.accx_0', 's32i', 'addi', 'add', 'sub', 'bnez', 'retw.n',
      // the attention kernels' QACC path (sign extension by compare + zip, broadcast loads, 16-bit MACs, lane reads)
      'ee.zero.q', 'ee.zero.qacc', 'ee.vcmp.lt.s8', 'ee.vzip.8', 'ee.vldbc.16.ip', 'ee.vmulas.s16.qacc',
      ...[0, 1, 2, 3, 4].flatMap((i) => [`rur.qacc_l_${i}`, `rur.qacc_h_${i}`]),
      // the scalar softmax kernel: base Xtensa and two options the S3's core configuration has (its
      // xtensa-config.h: XCHAL_HAVE_MUL32 for mull, XCHAL_HAVE_MINMAX for minu)
      'movi', 'slli', 'l32i', 'l16ui', 'l16si', 's16i', 'srai', 'srli', 'extui', 'addx4', 'blti', 'mull', 'minu', 'ssl', 'ssr', 'srl',
      // the int4 kernels: base Xtensa (or, ssai, bbci, bbsi) and the TRM's bitwise and lane instructions, which the
      // S3 QEMU runs (kernel-check.c compares their products with the C unpack)
      'or', 'ssai', 'bbci', 'bbsi', 'ee.movi.32.q', 'ee.vsl.32', 'ee.andq', 'ee.vunzip.8']);
    for (const op of ops) expect(known.has(op), op).toBe(true);
    expect(asm).toMatch(/\.global\s+lmf_pie_dots_s8/);
  });
});

describe('firmware/esp32s3 model slots and upload (host, esp_partition_* served from RAM)', () => {
  // model_partition.c with the core's store, against a RAM flash that erases to
  // 0xFF, only clears bits on write and checks alignment
  // (firmware/tests/idf-stubs/host/model_slots_test.c)
  const build = () => {
    const exe = path.join(tempDir('model-slots'), 'model-slots-test');
    const coreSrcs = readdirSync(path.join(CORE, 'src')).filter((f) => f.endsWith('.c') && f !== 'app.c').map((f) => path.join(CORE, 'src', f));
    const r = spawnSync('gcc', ['-std=gnu17', '-O1', '-Wall', '-Wextra', '-Werror', '-I', STUBS, '-I', path.join(ESP, 'main'), '-I', path.join(CORE, 'include'),
      path.join(STUBS, 'host/model_slots_test.c'), path.join(ESP, 'main/model_partition.c'), ...coreSrcs, '-lm', '-o', exe], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return exe;
  };

  it.each([
    ['4MB', 0x2f0000, 0x170000],
    ['8MB', 0x6f0000, 0x370000],
    ['16MB', 0xef0000, 0x770000],
  ])('%s layout: slot 1 on a 64 KiB page; the newest committed, verified slot is mapped, else the other, else "no model"', async (name, size, slot1) => {
    const csv = read(ESP, `partitions-${name}.csv`);
    const m = /^model,\s*0x40,\s*0x00,\s*(0x[0-9a-fA-F]+),\s*(0x[0-9a-fA-F]+)/m.exec(csv);
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBe(size);
    expect(Number(m![1]) % 0x10000).toBe(0);
    const exe = build();
    const r = spawnSync(exe, [await storiesBlob(), String(size)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.split(/[:= ]/)[0], l]));
    expect(r.stdout).not.toMatch(/failed|accepted/);
    expect(lines.slot1).toContain(`slot1=0x${slot1.toString(16)} flash=0x${(0x110000 + slot1).toString(16)}`);
    expect(lines.erased).toMatch(/^erased: none .*maps=0 bad=0 why=there is no model in flash yet/);
    expect(lines.slot0).toMatch(/^slot0: ok slot=0x0 bytes=\d+ next_seq=1 maps=1 bad=0/);
    expect(lines['committed-slot1']).toMatch(new RegExp(`^committed-slot1: ok slot=0x${slot1.toString(16)} bytes=\\d+ next_seq=2 maps=1 bad=0`));
    expect(lines['slot1-corrupt']).toMatch(/^slot1-corrupt: ok slot=0x0 .*maps=1 bad=0/);
    expect(lines['slot0-erased']).toMatch(new RegExp(`^slot0-erased: ok slot=0x${slot1.toString(16)} .*maps=1 bad=0`));
    expect(lines['both-bad']).toMatch(/^both-bad: none .*maps=0 bad=0 why=the model in flash does not match its commit record/);
    expect(lines['no-partition']).toMatch(/why=the partition table has no `model` partition/);
  }, 120_000);

  it('main.c hands the upload to the session after init and restarts after a committed upload', () => {
    const c = read(ESP, 'main/main.c');
    expect(c.indexOf('session.upload = &upload')).toBeGreaterThan(c.lastIndexOf('lmf_session_init('));
    expect(c).toMatch(/if \(n > 0\) lmf_session_feed\(&session, buf, \(size_t\)n\);\s*\n\s*if \(restart_pending\)[\s\S]{0,200}esp_restart\(\)/);
  });
});

describe('firmware/esp32s3 configuration', () => {
  const defaults = read(ESP, 'sdkconfig.defaults');

  it.each([
    'CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y',
    'CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG=y',
    'CONFIG_ESP_CONSOLE_SECONDARY_NONE=y',
    'CONFIG_PARTITION_TABLE_CUSTOM=y',
    'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions-4MB.csv"',
    'CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y',
    'CONFIG_SPIRAM=y',
    'CONFIG_SPIRAM_IGNORE_NOTFOUND=y',
    'CONFIG_SPIRAM_USE_CAPS_ALLOC=y',
    'CONFIG_FREERTOS_HZ=1000',
  ])('sdkconfig.defaults sets %s', (line) => {
    expect(defaults.split('\n')).toContain(line);
  });

  it('menuconfig offers the lmflash line on USB-Serial-JTAG (default) or UART0', () => {
    const k = read(ESP, 'main/Kconfig.projbuild');
    expect(k).toMatch(/choice LMF_SERIAL[\s\S]*default LMF_SERIAL_USB_SERIAL_JTAG[\s\S]*config LMF_SERIAL_USB_SERIAL_JTAG[\s\S]*config LMF_SERIAL_UART0[\s\S]*endchoice/);
    for (const option of ['LMF_CONTEXT', 'LMF_INTERNAL_RESERVE_KB', 'LMF_TWO_CORES', 'LMF_PARALLEL_MIN_MACS', 'LMF_UART_BAUD', 'LMF_BOARD_NAME'])
      expect(k).toContain(`config ${option}`);
    expect(read(ESP, 'sdkconfig.defaults.uart0')).toContain('CONFIG_LMF_SERIAL_UART0=y');
  });

  it('main/CMakeLists.txt lists every source and no component ESP-IDF v5.4 lacks', () => {
    const cm = read(ESP, 'main/CMakeLists.txt');
    const srcs = [...cm.matchAll(/"([a-z_0-9]+\.c)"/g)].map((m) => m[1]).sort();
    expect(srcs).toEqual(mainSources().sort());
    expect(cm).toMatch(/PRIV_REQUIRES core esp_partition spi_flash esp_driver_usb_serial_jtag esp_driver_uart vfs esp_timer heap freertos log/);
    expect(read(ESP, 'CMakeLists.txt')).toMatch(/set\(EXTRA_COMPONENT_DIRS "\$\{CMAKE_CURRENT_LIST_DIR\}\/\.\.\/core"\)/);
  });

  it('the CI workflow builds every configuration in espressif/idf:v5.4.x and keeps the build directories', () => {
    const y = read(PROJECT_ROOT, '.github/workflows/firmware.yml');
    expect(y).toMatch(/container: espressif\/idf:v5\.4\.\d+/);
    expect(y).toMatch(/\. "\$IDF_PATH\/export\.sh"/);
    expect(y).toMatch(/set-target esp32s3 build/);
    expect(y).toMatch(/uses: actions\/upload-artifact@v4[\s\S]*path: firmware\/esp32s3\/build-\$\{\{ matrix\.name \}\}/);
    const sets = [...y.matchAll(/defaults: (.+)/g)].map((m) => m[1].trim());
    expect(sets.length).toBeGreaterThanOrEqual(5);
    for (const s of sets) for (const f of s.split(';')) expect(() => read(ESP, f), f).not.toThrow();
  });
});
