/**
 * ESP32-S3 board profiles: what a blob needs on a given module, and whether it
 * fits. `lmflash inspect MODEL.blob --board s3-n8r2` prints it; the flasher
 * calls checkModelFitsBoard before it writes anything.
 *
 * Every figure here says where it comes from. Three kinds:
 *  - the firmware's own files (firmware/esp32s3/partitions-*.csv, the
 *    memory placement in main/memory_plan.c, the session's arena =
 *    src/memory-plan.ts): exact, and tests/boards.test.ts keeps them in step;
 *  - measurements of the core on the emulated Xtensa lx106 (QEMU -icount,
 *    firmware/ports/qemu-xtensa): exact instruction counts;
 *  - published figures for the ESP32-S3 (/work/shared/ESP32S3-FACTS.md §4-§6
 *    and the sources it cites): the internal RAM left to an app and the
 *    flash/PSRAM bandwidth are not measured on this firmware (no board has
 *    run it yet), so the RAM figure is conservative and the speed an estimate.
 * docs/hardware.md explains the cost model.
 */
import { DTYPE_F32, DTYPE_Q4, ROLES, type BlobConfig, type BlobView, type TensorEntry } from './blob.js';
import { blobBits, blobBytesFor, largestVocabFitting } from './blob-size.js';
import { LmflashError } from './errors.js';
import { ramPlan, type RamPlan } from './memory-plan.js';
import { ARCH_NGRAM, ngramRamPlan, type NgramRamPlan, type NgramView } from './ngram.js';

/** A blob of either architecture, as src/blob.ts or src/ngram.ts reads it. */
export type AnyView = BlobView | NgramView;
const isNgram = (v: AnyView): v is NgramView => v.arch === ARCH_NGRAM;

const KiB = 1024;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// Flash layouts (firmware/esp32s3/partitions-*.csv)

/** The partition the firmware maps the blob from: found by its label. */
export const MODEL_PARTITION = {
  label: 'model',
  /** Application-defined type (ESP-IDF reserves 0x00-0x3F and the other `data` subtypes). */
  type: 0x40,
  subtype: 0x00,
} as const;

export interface PartitionEntry {
  name: string;
  type: string;
  subtype: string;
  offset: number;
  size: number;
}

export interface FlashLayout {
  flashBytes: number;
  /** The CSV in firmware/esp32s3 and the sdkconfig.defaults file that selects it. */
  csv: string;
  sdkconfigDefaults: string[];
  partitions: PartitionEntry[];
}

function layout(mb: number, modelSize: number, extra: string[]): FlashLayout {
  return {
    flashBytes: mb * MiB,
    csv: `partitions-${mb}MB.csv`,
    sdkconfigDefaults: ['sdkconfig.defaults', ...extra],
    partitions: [
      { name: 'nvs', type: 'data', subtype: 'nvs', offset: 0x9000, size: 0x6000 },
      { name: 'phy_init', type: 'data', subtype: 'phy', offset: 0xf000, size: 0x1000 },
      { name: 'factory', type: 'app', subtype: 'factory', offset: 0x10000, size: 0x100000 },
      { name: 'model', type: '0x40', subtype: '0x00', offset: 0x110000, size: modelSize },
    ],
  };
}

export const FLASH_LAYOUTS: Record<4 | 8 | 16, FlashLayout> = {
  4: layout(4, 0x2f0000, []),
  8: layout(8, 0x6f0000, ['sdkconfig.defaults.8mb']),
  16: layout(16, 0xef0000, ['sdkconfig.defaults.16mb']),
};

export function modelPartition(l: FlashLayout): PartitionEntry {
  const p = l.partitions.find((e) => e.name === MODEL_PARTITION.label);
  if (!p) throw new Error(`layout ${l.csv} has no model partition`);
  return p;
}

// ---------------------------------------------------------------------------
// Memory and speed figures

/**
 * Internal RAM the decoder's arena may take. ESP32-S3: 512 KB SRAM, of which
 * 416 KB DIRAM at 0x3FC88000-0x3FCF0000 that the app's IRAM code, .data/.bss
 * and the heap share; the heap is split into regions and the arena needs one
 * contiguous block (heap_caps_get_largest_free_block). Published S3 figures:
 * 225 KB of heap in all for an app using 91 KB (espressif/esp-idf#10281,
 * v4.4.3); a 237 KiB main region plus 21 + 32 + 4 KiB ones in a CircuitPython
 * log (adafruit/circuitpython#7093); a 261 KiB main DRAM region with a
 * 192 KiB largest free block in a camera + Wi-Fi app (RomanLut/hx-esp32-cam-fpv#46).
 * lmflash's app has no Wi-Fi: 232 KiB for the largest block after start-up
 * is taken as a conservative estimate, less the reserve the firmware leaves
 * (CONFIG_LMF_INTERNAL_RESERVE_KB, 32) and its alignment slack (64 bytes,
 * memory_plan.c). The board prints the real figures at boot and in /info.
 */
export const INTERNAL_RAM = {
  largestFreeBlockBytes: 232 * KiB,
  reserveBytes: 32 * KiB,
  alignSlackBytes: 64,
  sources: ['espressif/esp-idf#10281', 'adafruit/circuitpython#7093', 'RomanLut/hx-esp32-cam-fpv#46', 'ESP32-S3 datasheet §3.1.2 (512 KB SRAM)'],
};

/** PSRAM the heap cannot hand out in one block (allocator metadata, estimate). */
export const PSRAM_HEAP_OVERHEAD_BYTES = 64 * KiB;

/** The CPU clock the firmware sets (CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240). */
export const CPU_HZ = 240e6;

/**
 * Bandwidth of cached reads: an assumption, not a measurement (nothing here
 * has run on an S3). Raw bus peaks (fact sheet §6: width x clock): quad flash
 * or quad PSRAM at 80 MHz STR 40 MB/s, octal PSRAM at 80 MHz DTR 160 MB/s.
 * Reads come in 64-byte cache-line misses that each pay a command, address
 * and dummy cycles (QIO: ~20 bus clocks on top of 128 for the data), and the
 * in-order core waits for them, so the point estimate assumes half the raw
 * peak: 20 MB/s from flash. The evidence bounds it only loosely: 40 MB/s is
 * a ceiling no read can beat; the one S3 figure, DaveBben/esp32-llm
 * streaming stories260K's float32 weights (1.04 MB a token) at 19.13 tok/s
 * (fact sheet §4, >= 20 MB/s), is a PSRAM figure, not flash, from a program
 * that also computes. So the range is given too: 35 % of the raw peak
 * (14 MB/s) to all of it (40 MB/s), which for stories260K at position 0 is
 * roughly 46 to 114 tok/s around the 20 MB/s estimate's ~63.
 */
export const BANDWIDTH = {
  flashQuad80: 0.5 * 40e6,
  flashQuad80Low: 0.35 * 40e6,
  flashQuad80High: 40e6,
  psramQuad80: 0.5 * 40e6,
  psramOctal80: 0.5 * 160e6,
  efficiency: 0.5,
};

/**
 * The core on the emulated lx106 (QEMU -icount: exact instruction counts;
 * firmware/ports/qemu-xtensa, -O2, stories260K group size 64, greedy from
 * BOS). Per token at position p: 2,712,000 + 5,660 p instructions (least
 * squares, relative error, on 16, 64, 256 and 321 forwards: 44,044,850 /
 * 185,125,175 / 879,370,125 / 1,160,767,775 instructions, with SiLU's
 * sigmoid inlined into lmf_swiglu; 2,720,000 + 5,660 p before it; before the
 * attention changes of issue 13 item 3: 2,717,900 + 5,788 p, from 44,180,875
 * / 185,813,600 / 884,673,825 / 1,168,577,150). A per-function profile of
 * the first 8 forwards (QEMU -d exec,in_asm) splits a token into the matrix products
 * (dot_rows + lmf_matvec_q8: 1,351,000), soft-float routines (__mulsf3,
 * __addsf3, __subsf3, __floatsisf, __divsf3: 1,177,000) and the rest
 * (214,000). Float operations: 26,300 soft-float calls for the forward at
 * position 1 (QEMU -d exec,nochain, executions of each routine's entry
 * block, 2 forwards minus 1: mul 15,558, add 4,837, sub 288, int-to-float
 * 5,448, div 206, compares 12); an earlier profile had counted 22,700.
 */
export const XTENSA_MEASURED = {
  instructionsAtPosition0: 2_712_000,
  instructionsPerPosition: 5_660,
  matvecInstructions: 1_351_000,
  softFloatInstructions: 1_177_000,
  floatOps: 26_300,
  restInstructions: 214_000,
  /** stories260K's shape, to scale the figures to other models */
  rowGroups: 4_152,
  attentionUnits: 320,
};

/**
 * The ESP32-S3 cost model (docs/hardware.md), cycles per token:
 *  - matrix products on PIE (kernels_esp32s3.S): 2 instructions per 16-byte
 *    block (EE.VMULAS.S8.ACCX.LD.IP + EE.VLD.128.IP) and ~24 cycles per row
 *    and group around them (the kernel's row loop, the float scale multiplies
 *    in C); split over two cores, plus ~1000 cycles per product to hand half
 *    of it over and back;
 *  - float work with the FPU: 4 cycles per operation the lx106 did in
 *    software (the count scaled from stories260K by rows x groups);
 *  - the rest at 1 cycle per lx106 instruction (same scaling);
 *  - attention: 1 cycle per lx106 instruction, per position, scaled by
 *    layers x heads x head size;
 *  - memory: every weight byte streams from flash once per token (far more
 *    than the 32 KB data cache), plus the KV cache when it is in PSRAM.
 * Compute and memory time are added (the core stalls on cache misses).
 */
export const COST = {
  cyclesPerBlock: 2,
  cyclesPerRowGroup: 24,
  cyclesPerFloatOp: 4,
  cyclesPerRestInstruction: 1,
  cyclesPerAttentionInstruction: 1,
  handOverCyclesPerProduct: 1000,
  /**
   * What an int4 block costs beyond an int8 one: the nibbles unpacked in PIE
   * registers (kernels_esp32s3.S lmf_pie_dots4_q4 / lmf_pie_dots_q4: a
   * shift and two ANDs per 16 bytes, 32 columns), measured on the ESP32-S3
   * under QEMU -icount (instructions, taken at 1 cycle each): stories260K
   * all-int4 minus all-int8, group size 64, 64 greedy forwards from BOS,
   * PIE image: 332,220 − 305,110 = 27,110 instructions per token over its
   * 16,288 int4 blocks = 1.7 a block. (The C unpack it replaced, a table
   * load and a 16-bit store a byte: 1,340,811 − 305,111, 64 a block.)
   */
  q4UnpackCyclesPerBlock: 1.7,
};

// ---------------------------------------------------------------------------
// Profiles

export interface PsramSpec {
  bytes: number;
  mode: 'quad' | 'octal';
}

export interface BoardProfile {
  id: string;
  name: string;
  flashMB: 4 | 8 | 16;
  psram: PsramSpec | null;
  /** sdkconfig.defaults files for `idf.py -D SDKCONFIG_DEFAULTS=...` */
  sdkconfigDefaults: string[];
}

function profile(id: string, flashMB: 4 | 8 | 16, psram: PsramSpec | null, name: string): BoardProfile {
  const extra = psram?.mode === 'octal' ? ['sdkconfig.defaults.octal'] : [];
  return { id, name, flashMB, psram, sdkconfigDefaults: [...FLASH_LAYOUTS[flashMB].sdkconfigDefaults, ...extra] };
}

export const BOARD_PROFILES: BoardProfile[] = [
  profile('s3-n4', 4, null, 'ESP32-S3, 4 MB flash, no PSRAM (e.g. ESP32-S3-MINI-1-N4)'),
  profile('s3-n4r2', 4, { bytes: 2 * MiB, mode: 'quad' }, 'ESP32-S3, 4 MB flash, 2 MB quad PSRAM (e.g. ESP32-S3-MINI-1-N4R2)'),
  profile('s3-n8', 8, null, 'ESP32-S3, 8 MB flash, no PSRAM (e.g. ESP32-S3-WROOM-1-N8)'),
  profile('s3-n8r2', 8, { bytes: 2 * MiB, mode: 'quad' }, 'ESP32-S3, 8 MB flash, 2 MB quad PSRAM (e.g. ESP32-S3-DevKitC-1-N8R2)'),
  profile('s3-n8r8', 8, { bytes: 8 * MiB, mode: 'octal' }, 'ESP32-S3, 8 MB flash, 8 MB octal PSRAM (e.g. ESP32-S3-DevKitC-1-N8R8)'),
  profile('s3-n16', 16, null, 'ESP32-S3, 16 MB flash, no PSRAM (e.g. ESP32-S3-WROOM-1-N16)'),
  profile('s3-n16r8', 16, { bytes: 8 * MiB, mode: 'octal' }, 'ESP32-S3, 16 MB flash, 8 MB octal PSRAM (e.g. ESP32-S3-DevKitC-1-N16R8)'),
];

/**
 * The profile of a board esptool found: its flash size ("4MB"…) and the PSRAM
 * in the chip package, from the features esptool-js reads out of the eFuses
 * ("Embedded PSRAM 8MB" is octal, 2MB quad). PSRAM outside the package is not
 * visible this way: such a board looks like one without PSRAM.
 */
export function detectedBoard(flashSize: string, features: string[]): BoardProfile {
  const mb = Number(/^(\d+)MB$/.exec(flashSize)?.[1] ?? 0);
  const flashMB = mb >= 16 ? 16 : mb >= 8 ? 8 : 4;
  const psram = /Embedded PSRAM 8MB/.test(features.join(' ')) ? 'r8' : /Embedded PSRAM 2MB/.test(features.join(' ')) ? 'r2' : '';
  const exact = BOARD_PROFILES.find((b) => b.id === `s3-n${flashMB}${psram}`);
  // no profile for this pairing (e.g. 16 MB with 2 MB PSRAM): the one with the same flash and no PSRAM is the safe guess
  return exact ?? findBoard(`s3-n${flashMB}`);
}

export function findBoard(id: string): BoardProfile {
  const p = BOARD_PROFILES.find((b) => b.id === id.toLowerCase());
  if (!p) throw new LmflashError(`unknown board profile "${id}": use one of ${BOARD_PROFILES.map((b) => b.id).join(', ')}`);
  return p;
}

// ---------------------------------------------------------------------------
// The model's shape

export interface MatvecShape {
  /** 16-column blocks the matrix products compute per token (16 bytes of int8, or 8 of int4) */
  blocks: number;
  /** of those, the blocks of int4 matrices, which are unpacked to int8 first */
  q4Blocks: number;
  /** rows x quantization groups of the products per token */
  rowGroups: number;
  /** matrix products per token */
  products: number;
  /** weight bytes read per token: the matrices with their scales, the norms, one embedding row */
  weightBytes: number;
}

const PRODUCT_ROLES: number[] = [ROLES.wq, ROLES.wk, ROLES.wv, ROLES.wo, ROLES.w1, ROLES.w2, ROLES.w3];

export function matvecShape(view: BlobView): MatvecShape {
  const c = view.config;
  let blocks = 0;
  let q4Blocks = 0;
  let rowGroups = 0;
  let products = 0;
  let weightBytes = 0;
  const groups = (cols: number) => Math.ceil(cols / c.groupSize);
  // an int4 row computes as many 16-column blocks as an int8 row, from half the bytes
  const rowBlocks = (t: TensorEntry) => Math.ceil(t.cols / 16);
  const addProduct = (t: TensorEntry) => {
    blocks += t.rows * rowBlocks(t);
    if (t.dtype === DTYPE_Q4) q4Blocks += t.rows * rowBlocks(t);
    rowGroups += t.rows * groups(t.cols);
    products++;
    weightBytes += t.rows * t.rowStride + 4 * t.rows * groups(t.cols);
  };
  for (const t of view.tensors) {
    if (t.dtype === DTYPE_F32) {
      weightBytes += t.rows * t.rowStride; // norm vectors
      continue;
    }
    const isProduct = PRODUCT_ROLES.includes(t.role) || t.role === ROLES.classifier;
    if (isProduct) addProduct(t);
  }
  const emb = view.tensors.find((t) => t.role === ROLES.token_embedding);
  if (emb) {
    if (c.sharedClassifier) {
      // the classifier is the embedding: a full product per token
      addProduct(emb);
    } else {
      weightBytes += emb.rowStride + 4 * groups(emb.cols); // one row looked up
    }
  }
  return { blocks, q4Blocks, rowGroups, products, weightBytes };
}

/** KV cache bytes attention reads at position pos: keys, values and their 4-byte scales, all layers and kv heads. */
function kvBytesRead(c: BlobConfig, pos: number): number {
  const hs = c.dim / c.nHeads;
  return c.nLayers * c.nKvHeads * (pos + 1) * (2 * hs + 8);
}

// ---------------------------------------------------------------------------
// Fit and plan

export type ArenaPlace = 'internal' | 'psram' | 'none';

export interface BoardPlan<P = RamPlan> {
  board: BoardProfile;
  flash: { partitionBytes: number; partitionOffset: number; csv: string; blobBytes: number; fits: boolean };
  ram: {
    /** the context asked for (the model's seq_len unless given) */
    wantedContext: number;
    /** what the firmware would use: the wanted context, or the longest that fits */
    context: number;
    place: ArenaPlace;
    plan: P;
    internalBudgetBytes: number;
    psramBudgetBytes: number;
    /** longest context whose arena fits in internal RAM (0: none) */
    maxInternalContext: number;
    /** longest context that fits anywhere */
    maxContext: number;
  };
  speed: TokensPerSecond | null;
}

export interface TokensPerSecond {
  /** model bytes streamed from flash per token (transformer: matrices with their scales, norms, one embedding row, int4 halving the matrices' part; N-gram: the unigram level) */
  weightBytesPerToken: number;
  /** at the first position and at the last of the context, with flash at BANDWIDTH.flashQuad80 (assumed) */
  atStart: number;
  /** at the first position with flash at the ends of the range the evidence allows (BANDWIDTH.flashQuad80Low/High) */
  atStartRange: { low: number; high: number };
  atEnd: number;
  computeMsAtStart: number;
  memoryMsAtStart: number;
  computeMsAtEnd: number;
  memoryMsAtEnd: number;
  note: string;
}

export interface FitProblem {
  kind: 'flash' | 'ram' | 'address-space';
  message: string;
}

function budgets(board: BoardProfile): { internal: number; psram: number } {
  const internal = Math.max(0, INTERNAL_RAM.largestFreeBlockBytes - INTERNAL_RAM.reserveBytes - INTERNAL_RAM.alignSlackBytes);
  const psram = board.psram ? board.psram.bytes - PSRAM_HEAP_OVERHEAD_BYTES : 0;
  return { internal, psram };
}

/** What placing a model's arena needs to know, for either architecture. */
interface ArenaNeeds<P extends { totalBytes: number }> {
  seqLen: number;
  fileSize: number;
  plan(ctx: number): P;
}

function needsOf(view: AnyView): ArenaNeeds<RamPlan | NgramRamPlan> {
  if (isNgram(view)) return { seqLen: view.config.seqLen, fileSize: view.fileSize, plan: (ctx) => ngramRamPlan(view.config, ctx) };
  return { seqLen: view.config.seqLen, fileSize: view.fileSize, plan: (ctx) => ramPlan(view.config, ctx) };
}

function maxContextFor(m: ArenaNeeds<{ totalBytes: number }>, bytes: number): number {
  let lo = 0;
  let hi = m.seqLen;
  while (lo < hi) {
    const mid = lo + Math.ceil((hi - lo) / 2);
    if (m.plan(mid).totalBytes <= bytes) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The firmware's placement (main/memory_plan.c) with the profile's budgets, for a model of either architecture. */
function placeOnBoard<P extends { totalBytes: number }>(m: ArenaNeeds<P>, board: BoardProfile, context?: number): BoardPlan<P> {
  if (context !== undefined && (context < 1 || context > m.seqLen))
    throw new LmflashError(`context ${context} is outside 1..${m.seqLen}, the model's positions`);
  const wanted = context ?? m.seqLen;
  const l = FLASH_LAYOUTS[board.flashMB];
  const part = modelPartition(l);
  const { internal, psram } = budgets(board);
  const need = m.plan(wanted).totalBytes;
  const maxInternal = maxContextFor(m, internal);
  const maxPsram = maxContextFor(m, psram);
  let place: ArenaPlace;
  let ctx = wanted;
  if (need <= internal) place = 'internal';
  else if (need <= psram) place = 'psram';
  else {
    ctx = Math.max(maxInternal, maxPsram);
    place = ctx === 0 ? 'none' : maxPsram > maxInternal ? 'psram' : 'internal';
  }
  return {
    board,
    flash: { partitionBytes: part.size, partitionOffset: part.offset, csv: l.csv, blobBytes: m.fileSize, fits: m.fileSize <= part.size },
    ram: {
      wantedContext: wanted,
      context: ctx,
      place,
      plan: m.plan(Math.max(ctx, 1)),
      internalBudgetBytes: internal,
      psramBudgetBytes: psram,
      maxInternalContext: maxInternal,
      maxContext: Math.max(maxInternal, maxPsram),
    },
    speed: null,
  };
}

/** The firmware's placement (main/memory_plan.c) with the profile's budgets. */
export function planOnBoard(view: BlobView, board: BoardProfile, context?: number): BoardPlan {
  const plan = placeOnBoard({ seqLen: view.config.seqLen, fileSize: view.fileSize, plan: (ctx) => ramPlan(view.config, ctx) }, board, context);
  if (plan.ram.place !== 'none') plan.speed = estimateTokensPerSecond(view, board, plan.ram.place, plan.ram.context);
  return plan;
}

/** The same for an N-gram blob: the arena holds the logits, the sampler's scratch and the tokens; the model stays in flash. */
export function planNgramOnBoard(view: NgramView, board: BoardProfile, context?: number): BoardPlan<NgramRamPlan> {
  const plan = placeOnBoard({ seqLen: view.config.seqLen, fileSize: view.fileSize, plan: (ctx) => ngramRamPlan(view.config, ctx) }, board, context);
  if (plan.ram.place !== 'none') plan.speed = estimateNgramTokensPerSecond(view, board, plan.ram.place);
  return plan;
}

/** A blob of either architecture: `planOnBoard` or `planNgramOnBoard`. */
export function planAnyOnBoard(view: AnyView, board: BoardProfile, context?: number): BoardPlan<RamPlan | NgramRamPlan> {
  return isNgram(view) ? planNgramOnBoard(view, board, context) : planOnBoard(view, board, context);
}

/**
 * What stops the blob (either architecture) from running on the board, as
 * sentences that say what to do; empty when it fits. A context that the
 * firmware would shorten to fit is a problem only when asked for explicitly
 * (`context`).
 */
export function checkModelFitsBoard(view: AnyView, board: BoardProfile, context?: number): FitProblem[] {
  const p = planAnyOnBoard(view, board, context);
  const needs = needsOf(view);
  const problems: FitProblem[] = [];
  const bigger = (bytes: number) =>
    BOARD_PROFILES.filter((b) => modelPartition(FLASH_LAYOUTS[b.flashMB]).size >= bytes)
      .map((b) => b.id)
      .filter((id, i, all) => all.indexOf(id) === i);
  if (!p.flash.fits) {
    const alternatives = bigger(view.fileSize);
    problems.push({
      kind: 'flash',
      message:
        `the model is ${fmtBytes(view.fileSize)} but the \`model\` partition of ${board.id} holds ${fmtBytes(p.flash.partitionBytes)} ` +
        `(${p.flash.csv}): ` +
        (alternatives.length ? `use a board with more flash (${alternatives.join(', ')}) or a smaller model` : 'use a smaller model') +
        (isNgram(view) ? '' : smallerTransformerAdvice(view, p.flash.partitionBytes)),
    });
  }
  if (p.ram.place === 'none') {
    const withPsram = BOARD_PROFILES.filter((b) => b.psram && needs.plan(1).totalBytes <= budgets(b).psram).map((b) => b.id);
    problems.push({
      kind: 'ram',
      message:
        `the model needs ${fmtBytes(needs.plan(1).totalBytes)} of RAM even for a context of 1 token, more than ` +
        `${board.id} has (${fmtBytes(p.ram.internalBudgetBytes)} of internal RAM${board.psram ? `, ${fmtBytes(p.ram.psramBudgetBytes)} of PSRAM` : ', no PSRAM'}): ` +
        (isNgram(view) && withPsram.length && !board.psram
          ? `use a board with PSRAM (${withPsram.join(', ')}) or a smaller vocabulary (the logits and the sampler take 12 bytes per word)`
          : 'use a smaller model'),
    });
  } else if (context !== undefined && p.ram.context < context) {
    problems.push({
      kind: 'ram',
      message:
        `a context of ${context} tokens needs ${fmtBytes(needs.plan(context).totalBytes)} of RAM; ${board.id} has room for ` +
        `${p.ram.maxContext} (${fmtBytes(p.ram.internalBudgetBytes)} internal${board.psram ? `, ${fmtBytes(p.ram.psramBudgetBytes)} PSRAM` : ''}): ` +
        `ask for at most ${p.ram.maxContext}${board.psram ? '' : ', or use a board with PSRAM'}`,
    });
  }
  // The MMU maps 32 MB of data address space, shared by the mapped model, PSRAM and the app's rodata (fact sheet §4).
  const mapped = Math.ceil(view.fileSize / 65536) * 65536 + (board.psram?.bytes ?? 0) + 1 * MiB;
  if (mapped > 32 * MiB)
    problems.push({
      kind: 'address-space',
      message: `the mapped model (${fmtBytes(view.fileSize)}) and ${fmtBytes(board.psram?.bytes ?? 0)} of PSRAM do not fit the S3's 32 MB of mapped address space together: use a smaller model`,
    });
  return problems;
}

/** Control and byte-fallback tokens of a llama2.c vocabulary: below this, pruning the vocabulary cannot make a model fit. */
const FEWEST_USEFUL_TOKENS = 3 + 256 + 1;

/**
 * How a transformer too big for a partition could fit it (src/blob-size.ts):
 * all-int4 if it is not, and the most tokens it may keep (`prune
 * --vocab-from`); or, when even its layers alone are too big, that no
 * vocabulary makes this shape fit.
 */
function smallerTransformerAdvice(view: BlobView, partitionBytes: number): string {
  const own = blobBits(view);
  const allInt4 = { bits: 4, embeddingBits: 4 } as const;
  const options: string[] = [];
  const int4Bytes = blobBytesFor(view, allInt4);
  const isAllInt4 = own.bits === 4 && own.embeddingBits === 4;
  if (!isAllInt4 && int4Bytes <= partitionBytes)
    return `; all-int4 (\`convert --bits 4 --embedding-bits 4\`) would make it ${fmtBytes(int4Bytes)}, which fits`;
  const keep = largestVocabFitting(view, partitionBytes);
  const keep4 = isAllInt4 ? keep : largestVocabFitting(view, partitionBytes, allInt4);
  const n = (x: number) => x.toLocaleString('en-US');
  const prune = 'the tokens a text of its kind uses: `lmflash prune MODEL --vocab-from TEXT`';
  const int4Way = '`convert --bits 4 --embedding-bits 4`';
  if (keep >= FEWEST_USEFUL_TOKENS) options.push(`keep at most ${n(keep)} of its ${n(view.config.vocabSize)} tokens (${prune})`);
  if (!isAllInt4 && keep4 >= FEWEST_USEFUL_TOKENS && keep4 > keep)
    options.push(`${keep >= FEWEST_USEFUL_TOKENS ? 'or make it' : 'make it'} all-int4 (${int4Way}) and keep at most ${n(keep4)} tokens`);
  if (options.length === 0) {
    const layers = blobBytesFor(view, { ...allInt4, vocab: 0 });
    options.push(
      `no vocabulary makes a model of this shape fit: its layers alone take ${fmtBytes(layers)} at all-int4 (dim ${view.config.dim}, ${view.config.nLayers} layers); use a smaller dim or fewer layers`,
    );
  }
  return `; ${options.join('; ')}`;
}

// ---------------------------------------------------------------------------
// Speed estimate

export function estimateTokensPerSecond(view: BlobView, board: BoardProfile, place: ArenaPlace, context: number): TokensPerSecond {
  const c = view.config;
  const m = matvecShape(view);
  const X = XTENSA_MEASURED;
  const scale = m.rowGroups / X.rowGroups;
  const units = c.nLayers * c.nHeads * (c.dim / c.nHeads);
  const matvec =
    (m.blocks * COST.cyclesPerBlock + m.q4Blocks * COST.q4UnpackCyclesPerBlock + m.rowGroups * COST.cyclesPerRowGroup) / 2 +
    m.products * COST.handOverCyclesPerProduct;
  const float = X.floatOps * scale * COST.cyclesPerFloatOp;
  const rest = X.restInstructions * scale * COST.cyclesPerRestInstruction;
  const perPosition = X.instructionsPerPosition * (units / X.attentionUnits) * COST.cyclesPerAttentionInstruction;
  const kvBandwidth = board.psram?.mode === 'octal' ? BANDWIDTH.psramOctal80 : BANDWIDTH.psramQuad80;
  const at = (pos: number, flash = BANDWIDTH.flashQuad80) => {
    const computeS = (matvec + float + rest + perPosition * pos) / CPU_HZ;
    const memoryS = m.weightBytes / flash + (place === 'psram' ? kvBytesRead(c, pos) / kvBandwidth : 0);
    return { computeS, memoryS };
  };
  const start = at(0);
  const rate = (t: { computeS: number; memoryS: number }) => 1 / (t.computeS + t.memoryS);
  const end = at(Math.max(0, context - 1));
  return {
    weightBytesPerToken: m.weightBytes,
    atStart: rate(start),
    atStartRange: { low: rate(at(0, BANDWIDTH.flashQuad80Low)), high: rate(at(0, BANDWIDTH.flashQuad80High)) },
    atEnd: 1 / (end.computeS + end.memoryS),
    computeMsAtStart: 1000 * start.computeS,
    memoryMsAtStart: 1000 * start.memoryS,
    computeMsAtEnd: 1000 * end.computeS,
    memoryMsAtEnd: 1000 * end.memoryS,
    note: 'estimate: lx106 instruction counts measured under QEMU, mapped to the S3 by docs/hardware.md\'s cost model; flash bandwidth assumed 20 MB/s (range 14-40 MB/s), not measured on a board',
  };
}

/**
 * N-gram models on the emulated lx106 (QEMU -icount, firmware/ports/qemu-xtensa,
 * -O2, greedy from "and the lord said" with </s> banned): per token, the
 * difference of 33 and 1 generated tokens over 32, order-2 KJV word models:
 * vocabulary 27,599 (train split): 2,031,671 instructions; vocabulary 5,707
 * (the first 300,000 bytes): 408,084. A straight line through both: 74.2
 * instructions per vocabulary entry and next to nothing else (the context
 * lookups and their successors are binary searches and short runs). Each
 * entry is one float addition (unigram value + the contexts' backoffs),
 * done in software on the lx106, plus the bit unpacking, the store and the
 * greedy comparison.
 */
export const NGRAM_XTENSA_MEASURED = {
  instructionsPerVocabEntry: 74.2,
  floatAddsPerVocabEntry: 1,
  /** lx106 instructions per soft-float operation: stories260K's profile, 1,177,000 over 26,300 operations (XTENSA_MEASURED) */
  softFloatInstructionsPerOp: XTENSA_MEASURED.softFloatInstructions / XTENSA_MEASURED.floatOps,
};

/**
 * The N-gram cost model (docs/hardware.md), per greedy token:
 *  - compute: per vocabulary entry, the lx106's instructions less its soft
 *    float addition at 1 cycle each, plus 4 cycles for the FPU's addition
 *    (COST.cyclesPerFloatOp); one core (the N-gram pass is not split);
 *  - memory: the unigram level (one entry per word, float32 values) streams
 *    from flash once per token, far more than the 32 KB cache; the longer
 *    orders are read only for the few successors of each context (ignored);
 *    when the arena is in PSRAM, the logits are written and read back there.
 * Sampling (temperature > 0) adds a softmax over the vocabulary: not modelled.
 */
export function estimateNgramTokensPerSecond(view: NgramView, board: BoardProfile, place: ArenaPlace): TokensPerSecond {
  const V = view.config.vocabSize;
  const M = NGRAM_XTENSA_MEASURED;
  const otherInstructions = M.instructionsPerVocabEntry - M.floatAddsPerVocabEntry * M.softFloatInstructionsPerOp;
  const cycles = V * (otherInstructions * COST.cyclesPerRestInstruction + M.floatAddsPerVocabEntry * COST.cyclesPerFloatOp);
  const uni = view.levels[0];
  const unigramBytes = uni.entriesBytes;
  const psramBandwidth = board.psram?.mode === 'octal' ? BANDWIDTH.psramOctal80 : BANDWIDTH.psramQuad80;
  const computeS = cycles / CPU_HZ;
  const memory = (flash: number) => unigramBytes / flash + (place === 'psram' ? (2 * 4 * V) / psramBandwidth : 0);
  const memoryS = memory(BANDWIDTH.flashQuad80);
  const tps = 1 / (computeS + memoryS);
  return {
    weightBytesPerToken: unigramBytes,
    atStart: tps,
    atStartRange: { low: 1 / (computeS + memory(BANDWIDTH.flashQuad80Low)), high: 1 / (computeS + memory(BANDWIDTH.flashQuad80High)) },
    atEnd: tps, // an N-gram's cost does not grow with the position
    computeMsAtStart: 1000 * computeS,
    memoryMsAtStart: 1000 * memoryS,
    computeMsAtEnd: 1000 * computeS,
    memoryMsAtEnd: 1000 * memoryS,
    note: 'estimate, greedy: lx106 instruction counts measured under QEMU, mapped to the S3 by docs/hardware.md\'s N-gram cost model; flash bandwidth assumed 20 MB/s (range 14-40 MB/s), not measured on a board',
  };
}

export function fmtBytes(n: number): string {
  if (n >= MiB) return `${(n / MiB).toFixed(2)} MiB`;
  if (n >= KiB) return `${(n / KiB).toFixed(1)} KiB`;
  return `${n} bytes`;
}
