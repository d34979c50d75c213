/**
 * The ESP32-S3 layer, run for real on an emulated S3 (firmware/ports/qemu-esp32s3,
 * the toolchain and QEMU in ../shared/toolchains/esp32s3):
 *  - the PIE kernel assembles with the S3 assembler and disassembles to the
 *    instruction forms and loop structure its contract needs; broken copies
 *    are caught;
 *  - the whole core compiles for the S3 with -Werror (the build), with no
 *    fused multiply-add in its code, and the image's FPU arithmetic matches
 *    the host's IEEE-754 bit for bit (self-test);
 *  - the image, with the PIE kernels and the hardware FPU, gives the host's
 *    tokens and every logit bit for bit: run.c's three reference prompts, a
 *    seeded sampled run, a transformer blob and N-gram blobs.
 * Without the toolchain it is skipped locally with the reason, and fails in CI.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { trainNgram } from '../converter/ngram/train.js';
import { buildEsp32s3, findEsp32s3Toolchain, runOnQemu, type Esp32s3Images } from '../host/qemu.js';
import { readTokenizerFile } from '../host/commands/train.js';
import { runCore, storiesBlob, tempDir } from './native-helpers.js';
import { PROJECT_ROOT, SHARED, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';
import { accxGapProblems, disassembledFunction, dots2Q4KernelProblems, dots4KernelProblems, dots4Q4KernelProblems, pieKernelProblems, q4KernelProblems, softmaxWeightsKernelProblems, weightedSumKernelProblems } from './pie-kernel-check.js';
import { readReferenceRun } from './reference-runs.js';
import { requireTool } from './required-tools.js';

const KERNEL = path.join(PROJECT_ROOT, 'firmware/core/src/kernels_esp32s3.S');
const ARENA = ['--arena', String(512 * 1024)]; // the image's arena (qemu-common/main.c)
const toolchain = findEsp32s3Toolchain(PROJECT_ROOT);
const missing = `the ESP32-S3 toolchain is missing: ${toolchain.missing.join('; ')}; fix: ${toolchain.install}`;

const haveToolchain = requireTool('ESP32-S3 toolchain', toolchain.ok ? null : missing);

/** The C flags, defines and includes CMake compiles the PIE image's sources with. */
function imageCompileFlags(): string[] {
  const flagsMake = readFileSync(path.join(PROJECT_ROOT, 'build/esp32s3/CMakeFiles/lmf-qemu.dir/flags.make'), 'utf8');
  const value = (key: string) => (new RegExp(`^${key} = (.*)$`, 'm').exec(flagsMake)?.[1] ?? '').split(/\s+/).filter(Boolean);
  return [...value('C_DEFINES'), ...value('C_INCLUDES'), ...value('C_FLAGS')];
}

function coreSources(): string[] {
  const dir = path.join(PROJECT_ROOT, 'firmware/core/src');
  return readdirSync(dir).filter((f) => f.endsWith('.c')).map((f) => path.join(dir, f));
}

/** The compiler's assembly output for one source. */
function compileToAssembly(source: string, flags: string[]): string {
  const out = path.join(tempDir('asm'), path.basename(source, '.c') + '.s');
  execFileSync(toolchain.gcc, [...flags, '-S', source, '-o', out]);
  return readFileSync(out, 'utf8');
}

/** One function's lines in the compiler's assembly output (from its label to its .size). */
function assemblyFunction(asm: string, name: string): string {
  const start = asm.indexOf(`\n${name}:\n`);
  if (start < 0) return '';
  const end = asm.indexOf(`.size\t${name},`, start);
  return asm.slice(start, end < 0 ? undefined : end);
}

/**
 * Whether the compiler's code for function `caller` in kernels.c calls
 * `callee`: read from its assembly, not the image's disassembly, where
 * objdump's linear sweep can fall out of step after a jump over alignment
 * padding and hide a call.
 */
function kernelsCalls(caller: string, callee: string): boolean {
  const asm = compileToAssembly(path.join(PROJECT_ROOT, 'firmware/core/src/kernels.c'), imageCompileFlags());
  return new RegExp(`\\tcall8\\t${callee}\\n`).test(assemblyFunction(asm, caller));
}

/** Assembles a kernel source with the S3 assembler and returns lmf_pie_dots_s8's instructions. */
function assembleKernel(source: string): { ok: boolean; stderr: string; problems: string[] } {
  const dir = tempDir('pie');
  const obj = path.join(dir, 'kernel.o');
  const as = spawnSync(toolchain.as, ['-o', obj, source], { encoding: 'utf8' });
  if (as.status !== 0) return { ok: false, stderr: as.stderr, problems: [] };
  const dump = execFileSync(toolchain.objdump, ['-d', obj], { encoding: 'utf8' });
  const hs8 = disassembledFunction(dump, 'lmf_pie_dots_hs8');
  return {
    ok: true,
    stderr: as.stderr,
    problems: [
      ...pieKernelProblems(disassembledFunction(dump, 'lmf_pie_dots_s8')),
      ...(hs8.length ? accxGapProblems(hs8, 'lmf_pie_dots_hs8') : ['lmf_pie_dots_hs8 is not in the object file']),
      ...weightedSumKernelProblems(disassembledFunction(dump, 'lmf_pie_weighted_sum_hs8')),
      ...dots4KernelProblems(disassembledFunction(dump, 'lmf_pie_dots4_s8')),
      ...softmaxWeightsKernelProblems(disassembledFunction(dump, 'lmf_s3_softmax_weights')),
      ...q4KernelProblems(disassembledFunction(dump, 'lmf_pie_dots_q4')),
      ...dots4Q4KernelProblems(disassembledFunction(dump, 'lmf_pie_dots4_q4')),
      ...dots2Q4KernelProblems(disassembledFunction(dump, 'lmf_pie_dots2_q4')),
    ],
  };
}

/** A copy of the kernel with one edit, in a temp folder. */
function brokenKernel(from: RegExp | string, to: string): string {
  const src = readFileSync(KERNEL, 'utf8');
  const broken = src.replace(from, to);
  if (broken === src) throw new Error(`the edit ${from} matched nothing in kernels_esp32s3.S`);
  const file = path.join(tempDir('pie-broken'), 'kernel.S');
  writeFileSync(file, broken);
  return file;
}

describe.runIf(haveToolchain)('ESP32-S3 PIE kernel (kernels_esp32s3.S, xtensa-esp32s3-elf-as)', () => {
  it('assembles cleanly and disassembles to the contract: ee.* forms, 16-byte steps, the two loops', () => {
    const r = assembleKernel(KERNEL);
    expect(r.stderr).toBe('');
    expect(r.ok).toBe(true);
    expect(r.problems).toEqual([]);
  });

  it.each([
    ['a load that steps 32 bytes', /ee\.vld\.128\.ip   q1, a9, 16\n\.Lblocks_end/, 'ee.vld.128.ip   q1, a9, 32\n.Lblocks_end', /ee\.vld\.128\.ip q1, a9, 32/],
    ['no EE.ZERO.ACCX (rows would add up)', /\n    ee\.zero\.accx\n/, '\n', /PIE instructions are/],
    ['the last MAC dropped', /\n    ee\.vmulas\.s8\.accx  q0, q1\n/, '\n', /PIE instructions are/],
    ['the read shifted by the block count', /ee\.srs\.accx     a12, a10, 0/, 'ee.srs.accx     a12, a11, 0', /shift register a11 is not set to 0/],
    ['operands swapped (q1 as the weights)', 'ee.vmulas.s8.accx.ld.ip  q0, a8, 16, q0, q1', 'ee.vmulas.s8.accx.ld.ip  q1, a8, 16, q0, q1', /expected ee\.vmulas\.s8\.accx\.ld\.ip q0, a8, 16, q0, q1/],
    ['the loop end one instruction late', /\.Lblocks_end:\n    ee\.vmulas\.s8\.accx  q0, q1\n/, '    ee.vmulas.s8.accx  q0, q1\n.Lblocks_end:\n', /block loop ends at/],
    ['no gap before ACCX is read', /    add     a3, a3, a4([^\n]*)\n    addi    a7, a7, -1([^\n]*)\n    ee\.srs\.accx     a12, a10, 0\n/, '    ee.srs.accx     a12, a10, 0\n    add     a3, a3, a4\n    addi    a7, a7, -1\n', /2-cycle gap/],
    ['the stride not added', /    add     a3, a3, a4/, '    nop', /advance by the stride/],
    ['attention: an ACCX read right after its MAC', /    mov\.n   a8, a6\n    addi    a2, a2, 8\n    rur\.accx_0  a7\n/, '    rur.accx_0  a7\n    mov.n   a8, a6\n    addi    a2, a2, 8\n', /lmf_pie_dots_hs8: rur\.accx_0 .* only 0 instruction/],
    ['weighted sum: the zip operands swapped (the signs as the low bytes)', 'ee.vzip.8       q0, q1', 'ee.vzip.8       q1, q0', /lmf_pie_weighted_sum_hs8: PIE instructions are/],
    ['weighted sum: greater-than for the signs', 'ee.vcmp.lt.s8   q1, q0, q7', 'ee.vcmp.gt.s8   q1, q0, q7', /lmf_pie_weighted_sum_hs8: PIE instructions are/],
    ['weighted sum: a weight skipped (step 4)', 'ee.vldbc.16.ip  q3, a3, 2', 'ee.vldbc.16.ip  q3, a3, 4', /lmf_pie_weighted_sum_hs8: PIE instructions are/],
    ['weighted sum: the second MAC after the loop', /    ee\.vmulas\.s16\.qacc  q1, q3\n\.Lws_pairs_end:\n/, '.Lws_pairs_end:\n    ee.vmulas.s16.qacc  q1, q3\n', /pair loop ends at/],
    ['weighted sum: QACC read right after the MAC', /    mov\.n   a6, a2([^\n]*)\n    addi    a7, a2, 20\n    rur\.qacc_l_0    a8\n/, '    rur.qacc_l_0    a8\n    mov.n   a6, a2\n    addi    a7, a2, 20\n', /only 0 instruction\(s\) between the last MAC and the first QACC read/],
    ['weighted sum: a QACC word stored in the wrong place', '    s32i    a11, a7, 12', '    s32i    a11, a7, 8', /rur\.qacc_h_3 is stored at raw \+ 28, not raw \+ 32/],
    ['weighted sum: QACC_H_4 never read', '    rur.qacc_h_4    a12\n', '', /expected each of RUR\.QACC_L_0\.\.4/],
    ['four blocks: a weight block against the wrong activations', 'ee.vmulas.s8.accx.ld.ip  q0, a3, 16, q0, q3\n', 'ee.vmulas.s8.accx.ld.ip  q0, a3, 16, q0, q2\n', /lmf_pie_dots4_s8: PIE instructions are/],
    ['four blocks: no EE.ZERO.ACCX (rows would add up)', /loopgtz a6, \.Lrows4_end\n    ee\.zero\.accx\n/, 'loopgtz a6, .Lrows4_end\n', /lmf_pie_dots4_s8: PIE instructions are/],
    ['four blocks: no gap before ACCX is read', /    add     a3, a3, a9([^\n]*)\n    addi    a2, a2, 4([^\n]*)\n    ee\.srs\.accx     a12, a10, 0\n/, '    ee.srs.accx     a12, a10, 0\n    add     a3, a3, a9\n    addi    a2, a2, 4\n', /lmf_pie_dots4_s8: ee\.srs\.accx .* only 0 instruction/],
    ['four blocks: the row step without the 64 bytes already walked', '    addi    a9, a4, -64', '    addi    a9, a4, 0', /w does not move on by the stride/],
    ['four blocks: the store after the loop', /    s32i    a12, a2, 0\n\.Lrows4_end:\n/, '.Lrows4_end:\n    s32i    a12, a2, 0\n', /row loop does not end right after the store/],
    ['softmax weights: the table skipped for k = -15 too (its e_t is 1)', 'blti    a9, 2, .Lsw_store', 'blti    a9, 3, .Lsw_store', /lmf_s3_softmax_weights: the table is not skipped for x < 2/],
    ['softmax weights: SSR where SSL sets 32 - x', /    ssl     a9 /, '    ssr     a9 ', /lmf_s3_softmax_weights: e_t's shift is not set by SSL/],
    ['softmax weights: the weight shift not clamped', /    minu    a11, a11, a15\n/, '\n', /lmf_s3_softmax_weights: the weight shift is not clamped/],
    ['softmax weights: top read from the wrong stack slot', '    l32i    a13, a1, 32', '    l32i    a13, a1, 28', /lmf_s3_softmax_weights: top and the table are not read from the caller's stack/],
    ['softmax weights: the store after the loop', /\.Lsw_store:\n    s16i    a6, a2, 0([^\n]*)\n    addi    a2, a2, 2\n    addi    a4, a4, 2\n    addi    a5, a5, 2\n\.Lsw_end:\n/, '.Lsw_store:\n    addi    a2, a2, 2\n    addi    a4, a4, 2\n    addi    a5, a5, 2\n.Lsw_end:\n    s16i    a6, a2, 0\n', /lmf_s3_softmax_weights: w\[t\] is not stored in the loop/],
    ['int4: the nibble mask 0xF8 (the low byte\'s sign bit kept)', /(lmf_pie_dots_q4:\n    entry   a1, 32\n    movi    a8, )0xF0/, '$10xF8', /lmf_pie_dots_q4: q7 is not 0xF0 in every byte/],
    ['int4: SAR 8 for the low nibbles', /(lmf_pie_dots_q4:[^]*?)ssai    4/, '$1ssai    8', /lmf_pie_dots_q4: SAR is not set to 4/],
    ['int4: the sums read unshifted (16 times too large)', /(lmf_pie_dots_q4:[^]*?)movi\.n  a10, 4/, '$1movi.n  a10, 0', /lmf_pie_dots_q4: the EE\.SRS\.ACCX shift register a10 is not 4/],
    ['int4: the interleave swapped (high nibbles first)', /(\.Lq4_pairs_end:\n[^]*?)ee\.vzip\.8       q1, q0/, '$1ee.vzip.8       q0, q1', /lmf_pie_dots_q4: PIE instructions are/],
    ['int4: the odd half taken for an even count', 'bbci    a6, 0, .Lq4_even', 'bbsi    a6, 0, .Lq4_even', /lmf_pie_dots_q4: the odd half is not skipped by bbci a6, 0/],
    ['int4: the pair loop over all halves', /srli    a11, a6, 1/, 'mov.n   a11, a6', /lmf_pie_dots_q4: the pair loop count a11 is not halves \/ 2/],
    ['int4: the second MAC outside the pair loop', /    ee\.vmulas\.s8\.accx  q0, q3\n\.Lq4_pairs_end:\n/, '.Lq4_pairs_end:\n    ee.vmulas.s8.accx  q0, q3\n', /lmf_pie_dots_q4: (PIE instructions are|the pair loop does not end)/],
    ['int4, 64 columns: the activations not split into even and odd columns', 'ee.vunzip.8     q3, q4', 'ee.vzip.8       q3, q4', /lmf_pie_dots4_q4: PIE instructions are/],
    ['int4, 64 columns: the low nibbles against the odd columns', 'ee.vmulas.s8.accx.ld.ip  q7, a3, 16, q6, q1', 'ee.vmulas.s8.accx.ld.ip  q7, a3, 16, q6, q2', /lmf_pie_dots4_q4: PIE instructions are/],
    ['int4, 64 columns: the row step without the 32 bytes already walked', '    addi    a9, a4, -32', '    addi    a9, a4, -64', /lmf_pie_dots4_q4: w does not move on by the stride/],
    ['int4, 64 columns: no gap before ACCX is read', /(lmf_pie_dots4_q4:[^]*?)    add     a3, a3, a9([^\n]*)\n    addi    a2, a2, 4([^\n]*)\n    ee\.srs\.accx     a12, a10, 0\n/, '$1    ee.srs.accx     a12, a10, 0\n    add     a3, a3, a9\n    addi    a2, a2, 4\n', /lmf_pie_dots4_q4: ee\.srs\.accx .* only 0 instruction/],
    ['int4, group pairs: B\'s first half against A\'s last activations', /(lmf_pie_dots2_q4:[^]*?ee\.zero\.accx\n    ee\.vmulas\.s8\.accx  )q0, q3/, '$1q0, q2', /lmf_pie_dots2_q4: PIE instructions are/],
    ['int4, group pairs: ACCX not reset between the groups (B would add A)', /(    s32i    a12, a2, 0                  \/\* A's sum \*\/\n)    ee\.zero\.accx\n/, '$1', /lmf_pie_dots2_q4: PIE instructions are/],
    ['int4, group pairs: B\'s last half taken for b odd', 'bbsi    a6, 16, .Lq42_b_odd', 'bbci    a6, 16, .Lq42_b_odd', /lmf_pie_dots2_q4: B's last half is not skipped by bbsi a6, 16/],
    ['int4, group pairs: B\'s pairs counted from b, not b - 1', /(srli    a14, a6, 16\n)    addi    a14, a14, -1\n/, '$1', /lmf_pie_dots2_q4: B's pair count a14 is not/],
    ['int4, group pairs: A\'s pairs over all its halves', 'extui   a11, a6, 1, 15', 'extui   a11, a6, 0, 16', /lmf_pie_dots2_q4: A's pair count a11 is not a \/ 2/],
    ['int4, group pairs: B\'s sums at d + 2 rows', 'addx4   a13, a7, a2', 'addx8   a13, a7, a2', /lmf_pie_dots2_q4: B's pointer a13 is not d \+ rows - 4/],
    ['int4, group pairs: no gap before B\'s sum is read', /    addi    a2, a2, 4                   \/\* with the next, the 2-cycle gap \*\/\n    addi    a13, a13, 4\n    ee\.srs\.accx     a12, a10, 0\n/, '    ee.srs.accx     a12, a10, 0\n    addi    a2, a2, 4\n    addi    a13, a13, 4\n', /lmf_pie_dots2_q4: ee\.srs\.accx .* only 0 instruction/],
    ['softmax weights: vexp not stepped', /    addi    a5, a5, 2\n\.Lsw_end:/, '    nop\n.Lsw_end:', /lmf_s3_softmax_weights: a5 does not move on by 2 bytes/],
  ])('catches a broken copy: %s', (_what, from, to, expected) => {
    const r = assembleKernel(brokenKernel(from, to));
    expect(r.ok).toBe(true);
    expect(r.problems.join('\n')).toMatch(expected);
  });

  it('rejects an out-of-range immediate at assembly (the assembler knows the PIE encodings)', () => {
    const r = assembleKernel(brokenKernel('ee.vld.128.ip   q0, a8, 16', 'ee.vld.128.ip   q0, a8, 4096'));
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/out of range|invalid|operand/i);
  });
});

describe.runIf(haveToolchain)('the core on an emulated ESP32-S3 (qemu -M sim -cpu esp32s3)', () => {
  let images: Esp32s3Images;
  let blob: string;

  beforeAll(async () => {
    // the build itself is the "no warnings" check: the port compiles with -Werror
    images = await buildEsp32s3(PROJECT_ROOT);
    blob = await storiesBlob();
  }, 300_000);

  /** b: a blob file, or null for none. */
  const qemu = (args: string[], elf = images.elf, b: string | null = blob) => runOnQemu({ elf, blob: b ?? undefined, args, target: images.target, timeoutMs: 60_000 });

  it('links the PIE kernel and uses the FPU, with no fused multiply-add in its C code', () => {
    const dump = execFileSync(toolchain.objdump, ['-d', images.elf], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const functions = dump.split(/\n(?=[0-9a-f]{8} <)/);
    const body = (name: string) => functions.find((f) => f.includes(` <${name}>:`)) ?? '';
    expect(body('lmf_pie_dots_s8')).toMatch(/ee\.vmulas\.s8\.accx\.ld\.ip/);
    expect(kernelsCalls('lmf_matvec_q8', 'lmf_pie_dots_s8')).toBe(true);
    expect(kernelsCalls('lmf_matvec_q8', 'lmf_pie_dots4_s8')).toBe(true);
    expect(kernelsCalls('lmf_matvec_q8', 'lmf_pie_dots_hs8')).toBe(false); // one it does not call: the match names the callee
    // hardware float: mul.s in the forward pass, no soft-float multiply linked at all
    expect(dump).toMatch(/\tmul\.s\t/);
    expect(dump).not.toMatch(/<__mulsf3>:/);
    // madd.s / msub.s would round a*b+c once where the host rounds twice. The
    // check reads the compiler's own assembly for every core source, compiled
    // with the image's flags: a linked image's disassembly drifts out of step at
    // alignment padding and shows noise such as "madd.s" that never executes.
    const fused = coreSources().filter((src) => /\t(madd|msub|maddn|msubn)\.s\t/.test(compileToAssembly(src, imageCompileFlags())));
    expect(fused).toEqual([]);
  });

  it('the fused multiply-add check would catch -ffp-contract=fast (negative control)', () => {
    const obj = path.join(tempDir('fma'), 'model.o');
    const flags = ['-O2', '-std=c11', '-isystem', '/usr/lib/xtensa-lx106-elf/include', '-I', path.join(PROJECT_ROOT, 'firmware/core/include'), '-c', path.join(PROJECT_ROOT, 'firmware/core/src/model.c'), '-o', obj];
    execFileSync(toolchain.gcc, ['-ffp-contract=fast', ...flags]);
    expect(execFileSync(toolchain.objdump, ['-d', obj], { encoding: 'utf8' })).toMatch(/\tmadd\.s\t/);
    execFileSync(toolchain.gcc, ['-ffp-contract=off', ...flags]);
    expect(execFileSync(toolchain.objdump, ['-d', obj], { encoding: 'utf8' })).not.toMatch(/\t(madd|msub)\.s\t/);
  });

  it('self-test: float, double and integer arithmetic print byte for byte what x86-64 prints; CCOUNT = instructions / 25', async () => {
    const r = await runOnQemu({ elf: images.selftestElf, target: images.target, timeoutMs: 60_000 });
    const native = path.join(tempDir('selftest-s3'), 'selftest');
    execFileSync('gcc', ['-std=c11', '-O2', '-ffp-contract=off', '-o', native, path.join(PROJECT_ROOT, 'firmware/ports/qemu-common/selftest.c')]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString('utf8')).toBe(execFileSync(native).toString('utf8'));
    expect(r.stdout.toString('utf8')).toMatch(/^f32\.div [0-9a-f]{8}$/m);
    const loops = [...r.stderr.matchAll(/^calibration (\d+) instructions (\d+) ccount$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(loops).toHaveLength(2);
    for (const [instructions, ccount] of loops) expect(Math.abs(ccount * 25 - instructions)).toBeLessThanOrEqual(25);
  });

  it('the assembly softmax weights and int4 matrix products give their C definitions\' results on edge inputs (kernel-check.c, S3 against native C)', async () => {
    const r = await runOnQemu({ elf: images.kernelCheckElf, target: images.target, timeoutMs: 60_000 });
    const native = path.join(tempDir('kernel-check'), 'kernel-check');
    const core = path.join(PROJECT_ROOT, 'firmware/core');
    execFileSync('gcc', ['-std=c11', '-O2', '-ffp-contract=off', '-DLMF_PORTABLE_KERNELS', '-I', path.join(core, 'include'), '-o', native,
      path.join(PROJECT_ROOT, 'firmware/ports/qemu-esp32s3/kernel-check.c'), path.join(core, 'src/kernels.c'), path.join(core, 'src/detmath.c')]);
    expect(r.exitCode, r.stderr).toBe(0);
    const want = execFileSync(native).toString('utf8');
    expect(want).toMatch(/^softmax\.edge\.sum 00000004$/m); // k = -15: e_t = 1 at each of the four positions
    expect(want).toMatch(/^softmax\.random [0-9a-f]{8}$/m);
    expect(want.match(/^q4\.\d+x\d+\.g\d+ [0-9a-f]{8}$/gm)).toHaveLength(22); // each shape's hash, the S3's lines equal below
    expect(r.stdout.toString('utf8')).toBe(want);
  });

  // run.c's reference runs (../shared/reference/stories260K): greedy from each prompt for as many
  // positions as its logits file has, then every position's logits teacher-forced along that run.
  it.each([
    ['once', 'Once upon a time'],
    ['park', 'Lily and Tom went to the park. They saw a big dog.'],
    ['empty', ''],
  ])('stories260K, reference prompt "%s": greedy tokens and every logit identical to the host', async (name, prompt) => {
    const ref = readReferenceRun(name);
    const steps = ref.inputs.length - ref.prompt.length + 1;
    const gen = ['-p', prompt, '-n', String(steps), '--json'];
    const host = runCore(blob, [...ARENA, ...gen]);
    const s3 = await qemu(gen);
    expect(s3.exitCode, s3.stderr).toBe(0);
    expect(s3.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
    const run = JSON.parse(host.stdout.toString('utf8')) as { prompt_tokens: number[]; generated_tokens: number[] };
    expect(run.prompt_tokens).toEqual(ref.prompt); // the same prompt tokens as run.c
    expect(run.generated_tokens.length).toBe(steps);
    const ids = ['--tokens', [...run.prompt_tokens, ...run.generated_tokens].join(','), '--logits'];
    const hostLogits = runCore(blob, [...ARENA, ...ids]).stdout;
    const s3Logits = await qemu(ids);
    expect(hostLogits.length).toBe((run.prompt_tokens.length + steps) * 512 * 4);
    expect(s3Logits.stdout.equals(hostLogits)).toBe(true);
  }, 120_000);

  it('stories260K: a seeded sampled run (temperature, top-k, top-p, repetition penalty) gives the same tokens', async () => {
    const args = ['-p', 'Lily', '-n', '48', '-t', '1.0', '--top-p', '0.9', '-k', '40', '--repeat-penalty', '1.2', '-s', '1234', '--json'];
    const host = runCore(blob, [...ARENA, ...args]);
    const s3 = await qemu(args);
    expect(s3.exitCode, s3.stderr).toBe(0);
    expect(s3.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
    const other = runCore(blob, [...ARENA, ...args.slice(0, -3), '-s', '99', '--json']);
    expect(other.stdout.toString('utf8')).not.toBe(host.stdout.toString('utf8')); // the seed matters
  });

  // int4 weights: the nibbles unpacked in PIE registers (lmf_pie_dots4_q4 for stories260K's groups of 64,
  // lmf_pie_dots_q4 for w2's tail; lmf_pie_dots2_q4 for group sizes that are odd multiples of 16; the C
  // unpack and lmf_pie_dots_s8 for a matrix not laid out for them)
  it('stories260K with int4 layers: greedy tokens and every logit identical to the host, PIE and C kernel images', async () => {
    for (const k of ['lmf_pie_dots4_q4', 'lmf_pie_dots_q4', 'lmf_pie_dots2_q4', 'lmf_pie_dots_s8']) expect(kernelsCalls('lmf_matvec_q4', k)).toBe(true);
    const b4 = await storiesBlob(64, 4);
    const gen = ['-p', 'Once upon a time', '-n', '48', '--json'];
    const host = runCore(b4, [...ARENA, ...gen]);
    const s3 = await qemu(gen, images.elf, b4);
    expect(s3.exitCode, s3.stderr).toBe(0);
    expect(s3.stdout.toString('utf8')).toBe(host.stdout.toString('utf8'));
    const run = JSON.parse(host.stdout.toString('utf8')) as { prompt_tokens: number[]; generated_tokens: number[] };
    const ids = ['--tokens', [...run.prompt_tokens, ...run.generated_tokens].join(','), '--logits'];
    const hostLogits = runCore(b4, [...ARENA, ...ids]).stdout;
    expect(hostLogits.length).toBe((run.prompt_tokens.length + 48) * 512 * 4);
    expect((await qemu(ids, images.elf, b4)).stdout.equals(hostLogits)).toBe(true);
    expect((await qemu(ids, images.plainElf, b4)).stdout.equals(hostLogits)).toBe(true);
    expect(runCore(blob, [...ARENA, ...ids]).stdout.equals(hostLogits)).toBe(false); // int8 differs: the blob did change
  }, 120_000);

  it('stories260K with int4 layers at group 16 (lmf_pie_dots2_q4, group pairs): every logit identical to the host', async () => {
    const b4 = await storiesBlob(16, 4);
    const ids = ['--tokens', readReferenceRun('once').inputs.slice(0, 48).join(','), '--logits'];
    const hostLogits = runCore(b4, [...ARENA, ...ids]).stdout;
    const s3 = await qemu(ids, images.elf, b4);
    expect(s3.exitCode, s3.stderr).toBe(0);
    expect(hostLogits.length).toBe(48 * 512 * 4);
    expect(s3.stdout.equals(hostLogits)).toBe(true);
    expect(runCore(await storiesBlob(64, 4), [...ARENA, ...ids]).stdout.equals(hostLogits)).toBe(false); // group 64 differs: the groups did change
  }, 120_000);

  it('the C kernels image (no PIE) gives the same logits too', async () => {
    const ids = ['--tokens', readReferenceRun('once').inputs.slice(0, 64).join(','), '--logits'];
    const s3 = await qemu(ids, images.plainElf);
    expect(s3.exitCode, s3.stderr).toBe(0);
    expect(s3.stdout.equals(runCore(blob, [...ARENA, ...ids]).stdout)).toBe(true);
  });

  describe('N-gram blobs', () => {
    const blobs: { name: string; file: string; prompt: string }[] = [];

    beforeAll(async () => {
      const dir = tempDir('ngram-s3');
      const kjv = readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').slice(0, 3000).map(splitPunctuationLowercase);
      const stories = readFileSync(STORIES_SAMPLES, 'utf8').split('\n').filter((l) => l.length > 0);
      const bpe = await readTokenizerFile(STORIES_TOKENIZER);
      const specs = [
        { name: 'words, order 3, 8-bit', lines: kjv, opts: { order: 3 }, prompt: 'and the lord said' },
        { name: 'BPE tok512, order 4, 8-bit', lines: stories.slice(200, 700), opts: { order: 4, tokenizer: bpe }, prompt: 'Once upon a time' },
      ];
      for (const s of specs) {
        const file = path.join(dir, `${s.name.replace(/[^a-z0-9]+/gi, '-')}.blob`);
        writeFileSync(file, trainNgram(s.lines, s.opts).blob);
        blobs.push({ name: s.name, file, prompt: s.prompt });
      }
    }, 120_000);

    it('greedy and seeded sampled tokens, and every position\'s logits, identical to the host', async () => {
      for (const b of blobs) {
        for (const gen of [
          ['-p', b.prompt, '-n', '40', '--json'],
          ['-p', b.prompt, '-n', '40', '-t', '0.9', '-k', '30', '--top-p', '0.95', '--repeat-penalty', '1.1', '-s', '7', '--json'],
        ]) {
          const host = runCore(b.file, [...ARENA, ...gen]);
          expect(host.status, host.stderr).toBe(0);
          const s3 = await qemu(gen, images.elf, b.file);
          expect(s3.exitCode, `${b.name}: ${s3.stderr}`).toBe(0);
          expect(s3.stdout.toString('utf8'), b.name).toBe(host.stdout.toString('utf8'));
        }
        const run = JSON.parse(runCore(b.file, [...ARENA, '-p', b.prompt, '-n', '40', '--json']).stdout.toString('utf8')) as { prompt_tokens: number[]; generated_tokens: number[] };
        const ids = ['--tokens', [...run.prompt_tokens, ...run.generated_tokens].join(','), '--logits'];
        const hostLogits = runCore(b.file, [...ARENA, ...ids]).stdout;
        expect(hostLogits.length).toBeGreaterThan(0);
        expect((await qemu(ids, images.elf, b.file)).stdout.equals(hostLogits), b.name).toBe(true);
      }
    }, 120_000);
  });

  it('refuses clearly to run without a blob, and names a blob file it cannot read', async () => {
    const none = await qemu(['-n', '1'], images.elf, null);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/no LMFB blob at 0x50400000/);
    const absent = await qemu(['-n', '1'], images.elf, path.join(tempDir('s3-absent'), 'missing.blob'));
    expect(absent.exitCode).toBe(2);
    expect(absent.stderr).toMatch(/missing\.blob: cannot open it/);
  });
});
