/**
 * Checks the disassembly of lmf_pie_dots_s8 (firmware/core/src/kernels_esp32s3.S,
 * assembled by the ESP32-S3 assembler, disassembled by its objdump) against the
 * kernel's contract in lmf/kernels.h: which ee.* instructions it uses, in which
 * register and immediate forms, and how its two loops are built. Returns the
 * problems found (none for a right kernel).
 */

export interface Insn {
  addr: number;
  mnemonic: string;
  operands: string[];
}

/** The instructions of one function in `objdump -d` output. */
export function disassembledFunction(objdump: string, name: string): Insn[] {
  const lines = objdump.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^[0-9a-f]+ <${name}>:$`).test(l));
  if (start < 0) return [];
  const out: Insn[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^[0-9a-f]+ <.*>:$/.test(line) || line.trim() === '') break;
    // "  18:\tf082018e \tee.vmulas.s8.accx.ld.ip\tq0, a8, 16, q0, q1"
    const m = /^\s*([0-9a-f]+):\s+[0-9a-f]+\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const operands = m[3].replace(/\s*<.*>$/, '').split(',').map((s) => s.trim()).filter(Boolean);
    out.push({ addr: parseInt(m[1], 16), mnemonic: m[2], operands });
  }
  return out;
}

const imm = (s: string | undefined) => (s === undefined ? NaN : Number(s));
const isAreg = (s: string | undefined) => s !== undefined && /^a([0-9]|1[0-5])$/.test(s);
const text = (i: Insn | undefined) => (i ? `${i.mnemonic} ${i.operands.join(', ')}` : 'nothing');

/** Problems with lmf_pie_dots_s8 as disassembled (see kernels_esp32s3.S for the intended shape). */
export function pieKernelProblems(insns: Insn[]): string[] {
  const problems: string[] = [];
  const fail = (msg: string) => problems.push(msg);
  if (insns.length === 0) return ['lmf_pie_dots_s8 is not in the object file'];
  if (insns[0].mnemonic !== 'entry' || insns[0].operands[0] !== 'a1') fail(`first instruction is ${text(insns[0])}, not entry a1, N (windowed ABI)`);
  const last = insns[insns.length - 1];
  if (!/^retw(\.n)?$/.test(last.mnemonic)) fail(`last instruction is ${text(last)}, not retw`);

  // Every PIE instruction, in order: exactly the row's sequence.
  const pie = insns.filter((i) => i.mnemonic.startsWith('ee.'));
  const expected = ['ee.zero.accx', 'ee.vld.128.ip', 'ee.vld.128.ip', 'ee.vmulas.s8.accx.ld.ip', 'ee.vld.128.ip', 'ee.vmulas.s8.accx', 'ee.srs.accx'];
  if (pie.map((i) => i.mnemonic).join(' ') !== expected.join(' ')) {
    fail(`PIE instructions are [${pie.map((i) => i.mnemonic).join(', ')}], expected [${expected.join(', ')}]`);
    return problems;
  }
  const [zero, ldW, ldX, macLd, ldX2, mac, srs] = pie;
  if (zero.operands.length !== 0) fail(`${text(zero)}: takes no operands`);
  // The weights stream through q0 and pointer W, the activations through q1 and pointer X, 16 bytes a step.
  const w = ldW.operands[1], x = ldX.operands[1];
  if (!isAreg(w) || !isAreg(x) || w === x) fail(`the first loads use pointers ${w} and ${x}: two distinct address registers needed`);
  if (ldW.operands[0] !== 'q0' || imm(ldW.operands[2]) !== 16) fail(`${text(ldW)}: expected ee.vld.128.ip q0, ${w}, 16`);
  if (ldX.operands[0] !== 'q1' || imm(ldX.operands[2]) !== 16) fail(`${text(ldX)}: expected ee.vld.128.ip q1, ${x}, 16`);
  if (macLd.operands.join(',') !== `q0,${w},16,q0,q1`) fail(`${text(macLd)}: expected ee.vmulas.s8.accx.ld.ip q0, ${w}, 16, q0, q1`);
  if (ldX2.operands.join(',') !== `q1,${x},16`) fail(`${text(ldX2)}: expected ee.vld.128.ip q1, ${x}, 16`);
  if (mac.operands.join(',') !== 'q0,q1') fail(`${text(mac)}: expected ee.vmulas.s8.accx q0, q1 (the last block, no load)`);
  const [dst, shiftReg, shiftImm] = srs.operands;
  if (!isAreg(dst) || !isAreg(shiftReg) || imm(shiftImm) !== 0) fail(`${text(srs)}: expected ee.srs.accx aR, aS, 0`);

  const at = (i: Insn) => insns.indexOf(i);
  // The shift register holds 0 for every row: set once, before the row loop, and not written again.
  const shiftSet = insns.slice(0, at(zero)).filter((i) => /^movi(\.n)?$/.test(i.mnemonic) && i.operands[0] === shiftReg);
  if (shiftSet.length !== 1 || imm(shiftSet[0].operands[1]) !== 0) fail(`the EE.SRS.ACCX shift register ${shiftReg} is not set to 0 before the rows`);
  if (insns.slice(at(shiftSet[0] ?? zero) + 1).some((i) => i.operands[0] === shiftReg && !i.mnemonic.startsWith('ee.') && !/^(s32i|bnez|beqz)/.test(i.mnemonic)))
    fail(`the shift register ${shiftReg} is overwritten inside the kernel`);

  // The block loop: a zero-overhead loop over exactly the fused MAC-and-load and the activation load.
  const loop = insns[at(macLd) - 1];
  if (!loop || loop.mnemonic !== 'loopgtz') fail(`the instruction before the fused MAC is ${text(loop)}, not loopgtz`);
  else {
    const end = parseInt(loop.operands[1], 16);
    if (end !== mac.addr) fail(`the block loop ends at 0x${end.toString(16)}, not at the last MAC (0x${mac.addr.toString(16)}): its body must be exactly the two loads`);
    if (at(mac) !== at(macLd) + 2) fail('the block loop body is not exactly two instructions');
    // its count is blocks - 1 (a6 - 1): the first block is loaded before, the last MAC after
    const count = insns.slice(0, at(zero)).find((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands[0] === loop.operands[0]);
    if (!count || count.operands[1] !== 'a6' || imm(count.operands[2]) !== -1) fail(`the block loop count ${loop.operands[0]} is not blocks - 1 (addi ${loop.operands[0]}, a6, -1)`);
  }

  // ACCX is read at least two instructions after the last MAC (esp-nn's 2-cycle gap).
  if (at(srs) - at(mac) < 3) fail(`only ${at(srs) - at(mac) - 1} instruction(s) between the last EE.VMULAS.S8.ACCX and EE.SRS.ACCX: the 2-cycle gap before ACCX is read`);
  // The result is stored to d, which then moves on one int32.
  const after = insns.slice(at(srs) + 1);
  if (!after.some((i) => /^s32i(\.n)?$/.test(i.mnemonic) && i.operands[0] === dst && i.operands[1] === 'a2' && imm(i.operands[2]) === 0)) fail(`the sum in ${dst} is not stored at d (s32i ${dst}, a2, 0)`);
  if (!insns.some((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands[0] === 'a2' && i.operands[1] === 'a2' && imm(i.operands[2]) === 4)) fail('d does not advance by 4 bytes a row');
  if (!insns.some((i) => /^add(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a3,a3,a4')) fail('w does not advance by the stride a row (add a3, a3, a4)');

  // The row loop: a branch back to where the row's pointers are reset from w (a3) and x (a5).
  const back = insns.find((i) => i.mnemonic === 'bnez' && parseInt(i.operands[1], 16) < zero.addr);
  if (!back) fail('no branch back to the next row');
  else {
    const row = insns.findIndex((i) => i.addr === parseInt(back.operands[1], 16));
    const head = insns.slice(row, at(zero));
    if (!head.some((i) => /^mov(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === `${w},a3`)) fail(`the row loop does not reset ${w} from w (a3)`);
    if (!head.some((i) => /^mov(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === `${x},a5`)) fail(`the row loop does not reset ${x} from x (a5)`);
    const counter = back.operands[0];
    if (!insns.some((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === `${counter},${counter},-1`)) fail(`the row count ${counter} is not decremented`);
    if (counter !== 'a7') fail(`the row loop counts ${counter}, not rows (a7)`);
  }
  return problems;
}

/** Every ACCX read (EE.SRS.ACCX, RUR.ACCX_0/1) at least two instructions after the MAC before it (the 2-cycle gap). */
export function accxGapProblems(insns: Insn[], name: string): string[] {
  const problems: string[] = [];
  let lastMac = -Infinity;
  insns.forEach((i, k) => {
    if (/^ee\.vmulas\..*accx/.test(i.mnemonic)) lastMac = k;
    else if (i.mnemonic === 'ee.srs.accx' || /^rur\.accx_[01]$/.test(i.mnemonic)) {
      if (k - lastMac < 3) problems.push(`${name}: ${i.mnemonic} at 0x${i.addr.toString(16)} is only ${k - lastMac - 1} instruction(s) after a MAC`);
    }
  });
  return problems;
}

/** A kernel's problem list with its windowed-ABI entry and return checked; `fail` prefixes the kernel's name. */
function startKernelCheck(name: string, insns: Insn[]): { problems: string[]; fail: (msg: string) => void } {
  const problems: string[] = [];
  const fail = (msg: string) => problems.push(`${name}: ${msg}`);
  if (insns[0].mnemonic !== 'entry' || insns[0].operands[0] !== 'a1') fail(`first instruction is ${text(insns[0])}, not entry a1, N (windowed ABI)`);
  if (!/^retw(\.n)?$/.test(insns[insns.length - 1].mnemonic)) fail(`last instruction is ${text(insns[insns.length - 1])}, not retw`);
  return { problems, fail };
}

/**
 * Problems with lmf_pie_weighted_sum_hs8 as disassembled (attention's
 * weighted sum over the values, head size 8; see kernels_esp32s3.S): the PIE
 * sequence and its operands (the values' sign-extension, the two broadcast
 * weights, the two MACs into QACC), the pair loop over exactly that body, QACC
 * read at least two instructions after the last MAC, and each of the ten
 * QACC words stored at its place in raw[].
 */
export function weightedSumKernelProblems(insns: Insn[]): string[] {
  const name = 'lmf_pie_weighted_sum_hs8';
  if (insns.length === 0) return [`${name} is not in the object file`];
  const { problems, fail } = startKernelCheck(name, insns);

  const pie = insns.filter((i) => i.mnemonic.startsWith('ee.'));
  const expected: [string, string][] = [
    ['ee.zero.qacc', ''],
    ['ee.zero.q', 'q7'],
    ['ee.vld.128.ip', 'q0,a4,16'], // positions 2p and 2p+1
    ['ee.vcmp.lt.s8', 'q1,q0,q7'], // their signs
    ['ee.vldbc.16.ip', 'q2,a3,2'], // w[2p]
    ['ee.vzip.8', 'q0,q1'], // values with signs: sign-extended int16
    ['ee.vldbc.16.ip', 'q3,a3,2'], // w[2p+1]
    ['ee.vmulas.s16.qacc', 'q0,q2'],
    ['ee.vmulas.s16.qacc', 'q1,q3'],
  ];
  const got = pie.map((i) => `${i.mnemonic} ${i.operands.join(',')}`.trim());
  const want = expected.map(([m, o]) => `${m} ${o}`.trim());
  if (got.join('; ') !== want.join('; ')) {
    fail(`PIE instructions are [${got.join('; ')}], expected [${want.join('; ')}]`);
    return problems;
  }
  const at = (i: Insn) => insns.indexOf(i);
  const firstLoad = pie[2], lastMac = pie[8];
  const loop = insns[at(firstLoad) - 1];
  if (!loop || loop.mnemonic !== 'loopgtz' || loop.operands[0] !== 'a5') fail(`the instruction before the pair loop's load is ${text(loop)}, not loopgtz a5 (pairs)`);
  else {
    const end = parseInt(loop.operands[1], 16);
    const next = insns[at(lastMac) + 1];
    if (!next || end !== next.addr) fail(`the pair loop ends at 0x${end.toString(16)}, not right after the second MAC: its body must be exactly the seven PIE instructions`);
    if (at(lastMac) - at(firstLoad) !== 6) fail('the pair loop body is not exactly seven instructions');
  }

  // QACC read: all ten words, the first at least two instructions after the last MAC.
  const reads = insns.filter((i) => /^rur\.qacc_[lh]_[0-4]$/.test(i.mnemonic));
  const names = reads.map((i) => i.mnemonic).sort();
  const all = ['l', 'h'].flatMap((h) => [0, 1, 2, 3, 4].map((k) => `rur.qacc_${h}_${k}`)).sort();
  if (names.join() !== all.join()) fail(`QACC is read with [${names.join(', ')}], expected each of RUR.QACC_L_0..4 and RUR.QACC_H_0..4 once`);
  if (reads.length && at(reads[0]) - at(lastMac) < 3) fail(`only ${at(reads[0]) - at(lastMac) - 1} instruction(s) between the last MAC and the first QACC read: the 2-cycle gap`);

  // Each word stored at raw + 4k (QACC_L_k) or raw + 20 + 4k (QACC_H_k), through copies of a2.
  const base = new Map<string, number>([['a2', 0]]);
  const holds = new Map<string, string>(); // register -> the QACC word it holds
  for (const i of insns.slice(at(lastMac) + 1)) {
    const [d, s, v] = i.operands;
    if (/^mov(\.n)?$/.test(i.mnemonic) && base.has(s)) base.set(d, base.get(s)!);
    else if (/^addi(\.n)?$/.test(i.mnemonic) && base.has(s)) base.set(d, base.get(s)! + imm(v));
    else if (/^rur\.qacc_/.test(i.mnemonic)) holds.set(d, i.mnemonic);
    else if (/^s32i(\.n)?$/.test(i.mnemonic)) {
      const word = holds.get(d);
      const m = word && /^rur\.qacc_([lh])_([0-4])$/.exec(word);
      if (!m || !base.has(s)) continue;
      const want = (m[1] === 'h' ? 20 : 0) + 4 * Number(m[2]);
      const off = base.get(s)! + imm(v);
      if (off !== want) fail(`${word} is stored at raw + ${off}, not raw + ${want}`);
      holds.delete(d);
      base.set(`stored:${word}`, off);
    }
  }
  for (const w of all) if (!base.has(`stored:${w}`)) fail(`${w} is not stored to raw`);
  return problems;
}

/**
 * Problems with lmf_pie_dots4_s8 as disassembled (lmf_pie_dots_s8 for four
 * blocks, the activations held in q1..q4): the activation loads once before
 * the row loop, per row ACCX cleared, the four weight blocks against q1..q4 in
 * order, the row loop over exactly the row (rows in a6), the stride step, and
 * each sum stored at d, which moves on one int32 a row.
 */
export function dots4KernelProblems(insns: Insn[]): string[] {
  const name = 'lmf_pie_dots4_s8';
  if (insns.length === 0) return [`${name} is not in the object file`];
  const { problems, fail } = startKernelCheck(name, insns);
  const pie = insns.filter((i) => i.mnemonic.startsWith('ee.'));
  const want = [
    'ee.vld.128.ip q1,a5,16', 'ee.vld.128.ip q2,a5,16', 'ee.vld.128.ip q3,a5,16', 'ee.vld.128.ip q4,a5,16',
    'ee.zero.accx', 'ee.vld.128.ip q0,a3,16',
    'ee.vmulas.s8.accx.ld.ip q0,a3,16,q0,q1', 'ee.vmulas.s8.accx.ld.ip q0,a3,16,q0,q2', 'ee.vmulas.s8.accx.ld.ip q0,a3,16,q0,q3',
    'ee.vmulas.s8.accx q0,q4',
  ];
  const got = pie.map((i) => `${i.mnemonic} ${i.operands.join(',')}`.trim());
  const srs = pie[pie.length - 1];
  if (got.slice(0, -1).join('; ') !== want.join('; ') || srs?.mnemonic !== 'ee.srs.accx') {
    fail(`PIE instructions are [${got.join('; ')}], expected [${want.join('; ')}; ee.srs.accx aR, aS, 0]`);
    return problems;
  }
  const at = (i: Insn) => insns.indexOf(i);
  const zero = pie[4], mac = pie[9];
  const [dst, shiftReg, shiftImm] = srs.operands;
  if (!isAreg(dst) || imm(shiftImm) !== 0) fail(`${text(srs)}: expected ee.srs.accx aR, aS, 0`);
  const shiftSet = insns.slice(0, at(zero)).filter((i) => /^movi(\.n)?$/.test(i.mnemonic) && i.operands[0] === shiftReg);
  if (shiftSet.length !== 1 || imm(shiftSet[0].operands[1]) !== 0) fail(`the EE.SRS.ACCX shift register ${shiftReg} is not set to 0 before the rows`);
  problems.push(...accxGapProblems(insns, name));

  // The row loop: loopgtz a6 over everything from EE.ZERO.ACCX to the store.
  const loop = insns[at(zero) - 1];
  const store = insns.slice(at(srs) + 1).find((i) => /^s32i(\.n)?$/.test(i.mnemonic));
  if (!loop || loop.mnemonic !== 'loopgtz' || loop.operands[0] !== 'a6') fail(`the instruction before EE.ZERO.ACCX is ${text(loop)}, not loopgtz a6 (rows)`);
  else if (!store || parseInt(loop.operands[1], 16) !== insns[at(store) + 1]?.addr) fail('the row loop does not end right after the store of the row\'s sum');
  if (!store || store.operands[0] !== dst || store.operands[1] !== 'a2' || imm(store.operands[2]) !== 0) fail(`the sum in ${dst} is not stored at d (s32i ${dst}, a2, 0)`);
  const body = insns.slice(at(zero), store ? at(store) + 1 : at(zero));
  if (!body.some((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a2,a2,4')) fail('d does not advance by 4 bytes a row');
  // w: four 16-byte steps inside the row, then stride - 64 to the next row's start
  const step = body.find((i) => /^add(\.n)?$/.test(i.mnemonic) && i.operands[0] === 'a3' && i.operands[1] === 'a3');
  const stepSet = step && insns.slice(0, at(zero)).find((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands[0] === step.operands[2]);
  if (!step || !stepSet || stepSet.operands[1] !== 'a4' || imm(stepSet.operands[2]) !== -64) fail('w does not move on by the stride a row (add a3, a3, aK with aK = a4 - 64)');
  if (at(mac) > at(srs)) fail('the last MAC is after the ACCX read');
  return problems;
}

/**
 * Problems with lmf_s3_softmax_weights as disassembled (attention's softmax
 * weights in scalar assembly; see kernels_esp32s3.S): no PIE at all; the
 * seventh and eighth arguments (top, the table) read where the windowed ABI
 * puts them, at the entry's frame size; best lowered by 17 * 2^15 before the
 * loop; a zero-overhead loop over n (a6) that reads score at a3 (4 bytes a
 * position) and vmant, vexp at a4, a5 and writes w at a2 (2 bytes each), and
 * ends right after those steps; inside it the skip for x < 2 (blti x, 2) to
 * the store of w, SSL x before e_t's shift, and the weight shift clamped by
 * MINU with 31 before its SSR; the sum returned in a2.
 */
export function softmaxWeightsKernelProblems(insns: Insn[]): string[] {
  const name = 'lmf_s3_softmax_weights';
  if (insns.length === 0) return [`${name} is not in the object file`];
  const { problems, fail } = startKernelCheck(name, insns);
  const is = (i: Insn | undefined, mnemonic: RegExp, operands: string) => !!i && mnemonic.test(i.mnemonic) && i.operands.join(',') === operands;
  const pie = insns.filter((i) => i.mnemonic.startsWith('ee.') || /^(rur|wur)\./.test(i.mnemonic));
  if (pie.length) fail(`uses ${pie.map(text).join('; ')}: it is scalar code`);
  const frame = imm(insns[0].operands[1]);
  const at = (i: Insn) => insns.indexOf(i);

  const loop = insns.find((i) => i.mnemonic === 'loopgtz');
  if (!loop || loop.operands[0] !== 'a6') {
    fail(`no zero-overhead loop over n (loopgtz a6): ${text(loop)}`);
    return problems;
  }
  const end = parseInt(loop.operands[1], 16);
  const body = insns.slice(at(loop) + 1, insns.findIndex((i) => i.addr === end));
  const before = insns.slice(1, at(loop));
  if (body.length === 0 || body[body.length - 1].addr >= end) fail(`the loop end 0x${end.toString(16)} is not right after its body`);

  // top and the table: the caller's stack, at a1 + frame and a1 + frame + 4
  const stackArg = (off: number) => before.find((i) => /^l32i(\.n)?$/.test(i.mnemonic) && i.operands[1] === 'a1' && imm(i.operands[2]) === off);
  const top = stackArg(frame), table = stackArg(frame + 4);
  if (!top || !table) fail(`top and the table are not read from the caller's stack at a1 + ${frame} and a1 + ${frame + 4} (entry a1, ${frame})`);
  // best - 17 * 2^15
  const seventeen = before.find((i) => /^movi(\.n)?$/.test(i.mnemonic) && imm(i.operands[1]) === 17);
  const scaled = seventeen && before.find((i) => is(i, /^slli$/, `${seventeen.operands[0]},${seventeen.operands[0]},15`));
  if (!scaled || !before.some((i) => is(i, /^sub$/, `a7,a7,${seventeen!.operands[0]}`))) fail('best is not lowered by 17 * 2^15 before the loop (movi 17, slli 15, sub a7, a7)');

  // the pointer steps, each once a position
  for (const [reg, step] of [['a3', 4], ['a2', 2], ['a4', 2], ['a5', 2]] as const) {
    const steps = body.filter((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands[0] === reg && i.operands[1] === reg);
    if (steps.length !== 1 || imm(steps[0].operands[2]) !== step) fail(`${reg} does not move on by ${step} bytes a position`);
  }
  const load = (mn: RegExp, reg: string) => body.find((i) => mn.test(i.mnemonic) && i.operands[1] === reg && imm(i.operands[2]) === 0);
  if (!load(/^l32i(\.n)?$/, 'a3') || !load(/^l16ui$/, 'a4') || !load(/^l16si$/, 'a5')) fail('the loop does not load score (l32i from a3), vmant (l16ui from a4) and vexp (l16si from a5)');
  const store = body.find((i) => i.mnemonic === 's16i' && i.operands[1] === 'a2' && imm(i.operands[2]) === 0);
  if (!store) fail('w[t] is not stored in the loop (s16i to a2)');

  // the skip: blti x, 2 to the store, inside the loop
  const skip = body.find((i) => i.mnemonic === 'blti');
  if (!skip || imm(skip.operands[1]) !== 2) fail(`the table is not skipped for x < 2 (blti x, 2): ${text(skip)}`);
  else if (!store || parseInt(skip.operands[2], 16) !== store.addr) fail(`the skip goes to 0x${parseInt(skip.operands[2], 16).toString(16)}, not to the store of w[t]`);
  // e_t: SSL x (SAR = 32 - x = 15 - k) before its SRL
  const ssl = body.find((i) => i.mnemonic === 'ssl');
  const srls = body.filter((i) => i.mnemonic === 'srl');
  if (!ssl || !skip || ssl.operands[0] !== skip.operands[0]) fail(`e_t's shift is not set by SSL of x (the register blti tests): ${text(ssl)}`);
  else if (srls.length !== 2 || at(srls[0]) < at(ssl)) fail('e_t is not shifted by SRL after the SSL');
  // w[t]: MINU with 31, then SSR of that, then the second SRL
  const thirtyOne = before.find((i) => /^movi(\.n)?$/.test(i.mnemonic) && imm(i.operands[1]) === 31)?.operands[0];
  const minu = body.find((i) => i.mnemonic === 'minu' && i.operands[2] === thirtyOne);
  const ssr = body.find((i) => i.mnemonic === 'ssr');
  if (!minu) fail('the weight shift is not clamped to 31 (minu with a register set to 31 before the loop)');
  else if (!ssr || ssr.operands[0] !== minu.operands[0] || at(ssr) < at(minu) || srls.length !== 2 || at(srls[1]) < at(ssr)) fail('the weight is not shifted by SSR of the clamped shift');

  const last = insns[insns.length - 2];
  if (!is(last, /^mov(\.n)?$/, `a2,${insns.slice(at(loop)).find((i) => /^add(\.n)?$/.test(i.mnemonic) && srls.length > 0 && at(i) > at(srls[0]))?.operands[0]}`)) fail(`the sum of e_t is not returned in a2: ${text(last)}`);
  return problems;
}

/**
 * The value each address register holds after `insns`, for the constant-building
 * instructions (movi, slli, srli, or, add); registers set any other way are unknown.
 */
function scalarConstants(insns: Insn[]): Map<string, number> {
  const v = new Map<string, number>();
  for (const i of insns) {
    const [d, s, t] = i.operands;
    const a = v.get(s), b = v.get(t);
    let r: number | undefined;
    if (/^movi(\.n)?$/.test(i.mnemonic)) r = imm(s);
    else if (i.mnemonic === 'slli' && a !== undefined) r = a << imm(t);
    else if (i.mnemonic === 'srli' && a !== undefined) r = a >>> imm(t);
    else if (i.mnemonic === 'or' && a !== undefined && b !== undefined) r = a | b;
    else if (/^add(\.n)?$/.test(i.mnemonic) && a !== undefined && b !== undefined) r = a + b;
    if (r !== undefined) v.set(d, r >>> 0);
    else if (isAreg(d) && !/^(s32i|s16i|s8i|bnez|beqz|bbci|bbsi|loopgtz|loop|entry)/.test(i.mnemonic) && !i.mnemonic.startsWith('ee.')) v.delete(d);
  }
  return v;
}

/**
 * What both int4 kernels need before their rows: the nibble mask 0xF0 in
 * every byte of q-register `mask` (four EE.MOVI.32.Q of a register holding
 * 0xF0F0F0F0), SAR = 4 for EE.VSL.32 (SSAI 4, and nothing else writes SAR),
 * EE.SRS.ACCX shifting by 4 (the sums are 16 times the products), a
 * register set once, and every ACCX read two instructions after a MAC.
 */
function q4SetupProblems(insns: Insn[], name: string, mask: string, rowStart: Insn, srs: Insn, fail: (msg: string) => void): string[] {
  const at = (i: Insn) => insns.indexOf(i);
  const before = insns.slice(0, at(rowStart));
  const movis = before.filter((i) => i.mnemonic === 'ee.movi.32.q');
  const consts = scalarConstants(before.slice(0, movis.length ? at(movis[0]) : 0));
  const lanes = movis.filter((i) => i.operands[0] === mask && consts.get(i.operands[1]) === 0xf0f0f0f0).map((i) => imm(i.operands[2])).sort();
  if (lanes.join() !== '0,1,2,3') fail(`${mask} is not 0xF0 in every byte before the rows (EE.MOVI.32.Q of 0xF0F0F0F0 into lanes 0..3; got lanes [${lanes.join(', ')}])`);
  const sar = insns.filter((i) => /^(ssai|ssl|ssr|ssa8l|ssa8b|wsr\.sar|wsr)$/.test(i.mnemonic));
  if (sar.length !== 1 || sar[0].mnemonic !== 'ssai' || imm(sar[0].operands[0]) !== 4 || at(sar[0]) > at(rowStart)) fail(`SAR is not set to 4 once before the rows (EE.VSL.32's shift): [${sar.map(text).join('; ')}]`);
  const [dst, shiftReg, shiftImm] = srs.operands;
  if (!isAreg(dst) || imm(shiftImm) !== 0) fail(`${text(srs)}: expected ee.srs.accx aR, aS, 0`);
  if (scalarConstants(before).get(shiftReg) !== 4) fail(`the EE.SRS.ACCX shift register ${shiftReg} is not 4 before the rows (the sums are 16 times the products)`);
  if (insns.slice(at(rowStart)).some((i) => i.operands[0] === shiftReg && !i.mnemonic.startsWith('ee.') && !/^(s32i|bnez|beqz)/.test(i.mnemonic)))
    fail(`the shift register ${shiftReg} is overwritten inside the rows`);
  return accxGapProblems(insns, name);
}

/**
 * Problems with lmf_pie_dots4_q4 as disassembled (64 int4 columns a row, the
 * activations in q1..q4 split into even and odd columns): the PIE sequence
 * with its operands, the setup (q4SetupProblems), the row loop over exactly
 * the row (rows in a6), the stride step of stride - 32, the store at d.
 */
export function dots4Q4KernelProblems(insns: Insn[]): string[] {
  const name = 'lmf_pie_dots4_q4';
  if (insns.length === 0) return [`${name} is not in the object file`];
  const { problems, fail } = startKernelCheck(name, insns);
  const pie = insns.filter((i) => i.mnemonic.startsWith('ee.') && i.mnemonic !== 'ee.movi.32.q');
  const want = [
    'ee.vld.128.ip q1,a5,16', 'ee.vld.128.ip q2,a5,16', 'ee.vld.128.ip q3,a5,16', 'ee.vld.128.ip q4,a5,16',
    'ee.vunzip.8 q1,q2', 'ee.vunzip.8 q3,q4', // even columns in q1, q3; odd in q2, q4
    'ee.zero.accx', 'ee.vld.128.ip q0,a3,16',
    'ee.vsl.32 q6,q0', 'ee.andq q0,q0,q5', 'ee.andq q6,q6,q5',
    'ee.vmulas.s8.accx.ld.ip q7,a3,16,q6,q1', 'ee.vmulas.s8.accx q0,q2',
    'ee.vsl.32 q6,q7', 'ee.andq q7,q7,q5', 'ee.andq q6,q6,q5',
    'ee.vmulas.s8.accx q6,q3', 'ee.vmulas.s8.accx q7,q4',
  ];
  const got = pie.map((i) => `${i.mnemonic} ${i.operands.join(',')}`.trim());
  const srs = pie[pie.length - 1];
  if (got.slice(0, -1).join('; ') !== want.join('; ') || srs?.mnemonic !== 'ee.srs.accx') {
    fail(`PIE instructions are [${got.join('; ')}], expected [${want.join('; ')}; ee.srs.accx aR, aS, 0]`);
    return problems;
  }
  const at = (i: Insn) => insns.indexOf(i);
  const zero = pie[6];
  problems.push(...q4SetupProblems(insns, name, 'q5', zero, srs, fail));
  const loop = insns[at(zero) - 1];
  const store = insns.slice(at(srs) + 1).find((i) => /^s32i(\.n)?$/.test(i.mnemonic));
  if (!loop || loop.mnemonic !== 'loopgtz' || loop.operands[0] !== 'a6') fail(`the instruction before EE.ZERO.ACCX is ${text(loop)}, not loopgtz a6 (rows)`);
  else if (!store || parseInt(loop.operands[1], 16) !== insns[at(store) + 1]?.addr) fail('the row loop does not end right after the store of the row\'s sum');
  if (!store || store.operands[0] !== srs.operands[0] || store.operands[1] !== 'a2' || imm(store.operands[2]) !== 0) fail(`the sum is not stored at d (s32i ${srs.operands[0]}, a2, 0)`);
  const body = insns.slice(at(zero), store ? at(store) : undefined);
  if (body.filter((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a2,a2,4').length !== 1) fail('d does not move on by 4 bytes a row');
  const step = body.find((i) => /^add(\.n)?$/.test(i.mnemonic) && i.operands[0] === 'a3' && i.operands[1] === 'a3');
  const stepSet = step && insns.slice(0, at(zero)).find((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands[0] === step.operands[2]);
  if (!stepSet || stepSet.operands[1] !== 'a4' || imm(stepSet.operands[2]) !== -32) fail('w does not move on by the stride a row (add a3, a3, stride - 32: the row\'s 32 bytes are already walked)');
  return problems;
}

/**
 * Problems with lmf_pie_dots_q4 as disassembled (any number of 16-column
 * halves, the activations from memory): the PIE sequence with its operands
 * (a pair loop and an odd half, each unpacking to column order by
 * EE.VZIP.8), the pair loop (loopgtz halves / 2) over exactly its body, the
 * odd half taken when bit 0 of halves is set, the setup (q4SetupProblems),
 * the row loop (rows in a7) resetting the pointers from w and x, the stride
 * step and the store at d.
 */
export function q4KernelProblems(insns: Insn[]): string[] {
  const name = 'lmf_pie_dots_q4';
  if (insns.length === 0) return [`${name} is not in the object file`];
  const { problems, fail } = startKernelCheck(name, insns);
  const pie = insns.filter((i) => i.mnemonic.startsWith('ee.') && i.mnemonic !== 'ee.movi.32.q');
  const got = pie.map((i) => `${i.mnemonic} ${i.operands.join(',')}`.trim());
  const w = pie[1]?.operands[1], x = pie[2]?.operands[1];
  const unpack = [`ee.vld.128.ip q0,${w},16`, `ee.vld.128.ip q2,${x},16`, 'ee.vsl.32 q1,q0'];
  const want = [
    'ee.zero.accx',
    ...unpack, `ee.vld.128.ip q3,${x},16`, 'ee.andq q0,q0,q7', 'ee.andq q1,q1,q7', 'ee.vzip.8 q1,q0', 'ee.vmulas.s8.accx q1,q2', 'ee.vmulas.s8.accx q0,q3',
    ...unpack, 'ee.andq q0,q0,q7', 'ee.andq q1,q1,q7', 'ee.vzip.8 q1,q0', 'ee.vmulas.s8.accx q1,q2',
  ];
  const srs = pie[pie.length - 1];
  if (!isAreg(w) || !isAreg(x) || w === x || got.slice(0, -1).join('; ') !== want.join('; ') || srs?.mnemonic !== 'ee.srs.accx') {
    fail(`PIE instructions are [${got.join('; ')}], expected [${want.join('; ')}; ee.srs.accx aR, aS, 0] with two distinct pointers`);
    return problems;
  }
  const at = (i: Insn) => insns.indexOf(i);
  const [zero, pairLoad] = pie;
  const pairEnd = pie[9], halfLoad = pie[10], halfMac = pie[16];
  problems.push(...q4SetupProblems(insns, name, 'q7', zero, srs, fail));

  const loop = insns[at(pairLoad) - 1];
  if (!loop || loop.mnemonic !== 'loopgtz') fail(`the instruction before the pair loop's first load is ${text(loop)}, not loopgtz`);
  else {
    if (parseInt(loop.operands[1], 16) !== insns[at(pairEnd) + 1]?.addr) fail('the pair loop does not end right after its second MAC');
    const count = insns.slice(0, at(zero)).find((i) => i.operands[0] === loop.operands[0] && !i.mnemonic.startsWith('ee.'));
    if (!count || count.mnemonic !== 'srli' || count.operands[1] !== 'a6' || imm(count.operands[2]) !== 1) fail(`the pair loop count ${loop.operands[0]} is not halves / 2 (srli ${loop.operands[0]}, a6, 1)`);
  }
  const odd = insns[at(halfLoad) - 1];
  if (!odd || odd.mnemonic !== 'bbci' || odd.operands[0] !== 'a6' || imm(odd.operands[1]) !== 0) fail(`the odd half is not skipped by bbci a6, 0 (an even number of halves): ${text(odd)}`);
  else if (parseInt(odd.operands[2], 16) !== insns[at(halfMac) + 1]?.addr) fail('the even case does not skip exactly the odd half');

  const after = insns.slice(at(srs) + 1);
  if (!after.some((i) => /^s32i(\.n)?$/.test(i.mnemonic) && i.operands[0] === srs.operands[0] && i.operands[1] === 'a2' && imm(i.operands[2]) === 0)) fail(`the sum is not stored at d (s32i ${srs.operands[0]}, a2, 0)`);
  if (!insns.some((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a2,a2,4')) fail('d does not move on by 4 bytes a row');
  if (!insns.some((i) => /^add(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a3,a3,a4')) fail('w does not move on by the stride a row (add a3, a3, a4)');
  const back = insns.find((i) => i.mnemonic === 'bnez' && parseInt(i.operands[1], 16) < zero.addr);
  if (!back || back.operands[0] !== 'a7') fail(`no branch back to the next row counting rows (bnez a7): ${text(back)}`);
  else {
    const head = insns.slice(insns.findIndex((i) => i.addr === parseInt(back.operands[1], 16)), at(zero));
    if (!head.some((i) => /^mov(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === `${w},a3`)) fail(`the row loop does not reset ${w} from w (a3)`);
    if (!head.some((i) => /^mov(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === `${x},a5`)) fail(`the row loop does not reset ${x} from x (a5)`);
    if (!insns.some((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a7,a7,-1')) fail('the row count a7 is not decremented');
  }
  return problems;
}

/**
 * Problems with lmf_pie_dots2_q4 as disassembled (two consecutive groups of
 * an odd multiple of 16 columns, see kernels_esp32s3.S): the PIE sequence
 * with its operands (A's pair loop, the load that ends A and starts B, the
 * ACCX read and reset between, B's first MAC against the activations after
 * A's, B's pair loop and its last half), both pair loops (A: extui halves,
 * 1, 15; B: ((halves >> 16) - 1) >> 1) over exactly their bodies, B's last
 * half skipped when bit 16 (b odd) is set, the setup (q4SetupProblems), A's
 * sums stored at d and B's at d + rows, the stride step and the row loop.
 */
export function dots2Q4KernelProblems(insns: Insn[]): string[] {
  const name = 'lmf_pie_dots2_q4';
  if (insns.length === 0) return [`${name} is not in the object file`];
  const { problems, fail } = startKernelCheck(name, insns);
  const pie = insns.filter((i) => i.mnemonic.startsWith('ee.') && i.mnemonic !== 'ee.movi.32.q');
  const got = pie.map((i) => `${i.mnemonic} ${i.operands.join(',')}`.trim());
  const w = pie[1]?.operands[1], x = pie[2]?.operands[1];
  const unpack = [`ee.vld.128.ip q0,${w},16`, `ee.vld.128.ip q2,${x},16`, 'ee.vsl.32 q1,q0'];
  const pair = [...unpack, `ee.vld.128.ip q3,${x},16`, 'ee.andq q0,q0,q7', 'ee.andq q1,q1,q7', 'ee.vzip.8 q1,q0', 'ee.vmulas.s8.accx q1,q2', 'ee.vmulas.s8.accx q0,q3'];
  const want = [
    'ee.zero.accx', ...pair, // A's pairs
    ...pair.slice(0, -1), 'ee.srs.accx', 'ee.zero.accx', 'ee.vmulas.s8.accx q0,q3', // A's last half, B's first
    ...pair, // B's pairs
    ...unpack, 'ee.andq q0,q0,q7', 'ee.andq q1,q1,q7', 'ee.vzip.8 q1,q0', 'ee.vmulas.s8.accx q1,q2', 'ee.srs.accx', // B's last half
  ];
  const shape = got.map((g) => (g.startsWith('ee.srs.accx ') ? 'ee.srs.accx' : g));
  if (!isAreg(w) || !isAreg(x) || w === x || shape.join('; ') !== want.join('; ')) {
    fail(`PIE instructions are [${got.join('; ')}], expected [${want.join('; ')}] with two distinct pointers (each ee.srs.accx aR, aS, 0)`);
    return problems;
  }
  const at = (i: Insn) => insns.indexOf(i);
  const zero = pie[0], srsA = pie[18], srsB = pie[pie.length - 1];
  problems.push(...q4SetupProblems(insns, name, 'q7', zero, srsA, fail));
  if (srsB.operands[1] !== srsA.operands[1] || imm(srsB.operands[2]) !== 0) fail(`B's read ${text(srsB)} does not shift as A's (${text(srsA)})`);
  const before = insns.slice(0, at(zero));

  const loopEnds = (first: Insn, last: Insn, what: string): Insn | undefined => {
    const loop = insns[at(first) - 1];
    if (!loop || loop.mnemonic !== 'loopgtz') fail(`the instruction before ${what}'s first load is ${text(loop)}, not loopgtz`);
    else if (parseInt(loop.operands[1], 16) !== insns[at(last) + 1]?.addr) fail(`${what} does not end right after its second MAC`);
    return loop?.mnemonic === 'loopgtz' ? loop : undefined;
  };
  const loopA = loopEnds(pie[1], pie[9], "A's pair loop");
  const loopB = loopEnds(pie[21], pie[29], "B's pair loop");
  if (loopA) {
    const count = before.find((i) => i.operands[0] === loopA.operands[0]);
    if (!count || count.mnemonic !== 'extui' || count.operands.slice(1).join(',') !== 'a6,1,15') fail(`A's pair count ${loopA.operands[0]} is not a / 2 (extui ${loopA.operands[0]}, a6, 1, 15)`);
  }
  if (loopB) {
    const sets = before.filter((i) => i.operands[0] === loopB.operands[0]).map((i) => `${i.mnemonic} ${i.operands.slice(1).join(',')}`);
    const b = loopB.operands[0];
    const fromB = ['srli a6,16', 'extui a6,16,16']; // the assembler writes srli by 16 as extui
    if (sets.length !== 3 || !fromB.includes(sets[0]) || sets[1].replace(/^addi\.n /, 'addi ') !== `addi ${b},-1` || sets[2] !== `srli ${b},1`)
      fail(`B's pair count ${b} is not (b - 1) / 2 (srli a6, 16; addi -1; srli 1): [${sets.join('; ')}]`);
  }
  const odd = insns[at(pie[30]) - 1];
  if (!odd || odd.mnemonic !== 'bbsi' || odd.operands[0] !== 'a6' || imm(odd.operands[1]) !== 16) fail(`B's last half is not skipped by bbsi a6, 16 (b odd): ${text(odd)}`);
  else if (parseInt(odd.operands[2], 16) !== insns[at(pie[36]) + 1]?.addr) fail("b odd does not skip exactly B's last half");

  const storeAfter = (srs: Insn) => insns.slice(at(srs) + 1).find((i) => /^s32i(\.n)?$/.test(i.mnemonic));
  const stA = storeAfter(srsA), stB = storeAfter(srsB);
  if (!stA || stA.operands.join(',') !== `${srsA.operands[0]},a2,0` || at(stA) > at(pie[20])) fail(`A's sum is not stored at d (s32i ${srsA.operands[0]}, a2, 0) before B's first MAC`);
  const dB = stB?.operands[1];
  if (!stB || stB.operands[0] !== srsB.operands[0] || imm(stB.operands[2]) !== 0 || dB === 'a2') fail(`B's sum is not stored by its own pointer (s32i ${srsB.operands[0]}, aB, 0)`);
  else {
    const sets = before.filter((i) => i.operands[0] === dB).map((i) => `${i.mnemonic} ${i.operands.slice(1).join(',')}`);
    if (sets.join('; ') !== `addx4 a7,a2; addi ${dB},-4`) fail(`B's pointer ${dB} is not d + rows - 4 before the rows (addx4 ${dB}, a7, a2; addi -4): [${sets.join('; ')}]`);
    const steps = insns.slice(at(zero)).filter((i) => i.operands[0] === dB && /^addi(\.n)?$/.test(i.mnemonic)).map((i) => i.operands.slice(1).join(','));
    if (steps.join() !== `${dB},4`) fail(`B's pointer ${dB} does not move on by 4 bytes a row`);
  }
  const body = insns.slice(at(zero));
  if (body.filter((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a2,a2,4').length !== 1 || !insns.slice(at(stA ?? zero)).some((i) => i.operands.join(',') === 'a2,a2,4')) fail('d does not move on by 4 bytes a row, after A\'s store');
  if (!body.some((i) => /^add(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a3,a3,a4')) fail('w does not move on by the stride a row (add a3, a3, a4)');
  const back = insns.find((i) => i.mnemonic === 'bnez' && parseInt(i.operands[1], 16) < zero.addr);
  if (!back || back.operands[0] !== 'a7') fail(`no branch back to the next row counting rows (bnez a7): ${text(back)}`);
  else {
    const head = insns.slice(insns.findIndex((i) => i.addr === parseInt(back.operands[1], 16)), at(zero));
    if (!head.some((i) => /^mov(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === `${w},a3`)) fail(`the row loop does not reset ${w} from w (a3)`);
    if (!head.some((i) => /^mov(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === `${x},a5`)) fail(`the row loop does not reset ${x} from x (a5)`);
    if (!body.some((i) => /^addi(\.n)?$/.test(i.mnemonic) && i.operands.join(',') === 'a7,a7,-1')) fail('the row count a7 is not decremented');
  }
  return problems;
}
