/**
 * `lmflash prune MODEL --sweep`: prune at several levels, with each
 * importance measure, optionally recover each point, and measure blob bytes
 * and perplexity; a table (--json) and a plot of perplexity against blob
 * size (--plot, an SVG drawn by lmflash, written atomically).
 *
 * Levels are fractions removed: FFN neurons (round(level × hidden_dim)),
 * layers (round(level × n_layers)) or width (kv groups, and with them heads
 * and residual channels: round(level × n_kv_heads) groups; the blob's dim is
 * n_heads × head size, see converter/prune-shape.ts). Levels that give the
 * same shape as a smaller level, nothing, or everything are skipped.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadAnyModel } from '../../converter/convert.js';
import { keptCount, type FfnImportance } from '../../converter/prune-ffn.js';
import { type Importance, type Shape, type ShapeTarget } from '../../converter/prune-shape.js';
import { packDocuments } from '../../converter/train/data.js';
import { seriesPlotSvg, type PlotSeries } from '../../converter/train/svg-plot.js';
import { writeBlob } from '../../src/blob.js';
import { LmflashError } from '../../src/errors.js';
import type { ModelConfig } from '../../src/model.js';
import type { Split } from './eval.js';
import { figures, linesOf, pruneAndRecover, recoverSettings, trainerKernels, type PruneFigures, type PruneOptions } from './prune.js';
import { withTempDir } from '../../src/temp-dir.js';

export const SWEEP_KINDS = ['ffn', 'layers', 'width'] as const;
export type SweepKind = (typeof SWEEP_KINDS)[number];
export const DEFAULT_SWEEP_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];

export interface SweepOptions extends Pick<PruneOptions, 'tokenizer' | 'calibrate' | 'text' | 'recover' | 'steps' | 'temperature' | 'alpha' | 'learningRate' | 'split' | 'evalText' | 'evalSplit' | 'evalLimit' | 'onStep'> {
  levels: number[];
  kinds: SweepKind[];
  /** one measure, or both when undefined */
  importance?: Importance;
  /** called after each point with a line for the log */
  onPoint?: (line: string) => void;
}

export interface SweepPoint {
  kind: SweepKind;
  importance: Importance;
  /** the fraction asked for */
  level: number;
  shape: Shape;
  parameters: number;
  blobBytes: number;
  ramBytes: number;
  /** without recovery */
  perplexity: number;
  /** after --steps of recovery (null without --recover) */
  recoveredPerplexity: number | null;
  recoverySeconds: number | null;
}

export interface SweepReport {
  unpruned: PruneFigures;
  evalText: string;
  evalSplit: Split;
  evalDocuments: number;
  recoverySteps: number | null;
  points: SweepPoint[];
}

/** Every mistake in the sweep's options at once. */
export function sweepOptionProblems(o: { levels: number[]; kinds: string[]; evalText?: string; text?: string; calibrate?: string; importance?: string; recover?: boolean; steps?: number }): string[] {
  const p: string[] = [];
  const bad = o.levels.filter((l) => !(l > 0 && l < 1));
  if (o.levels.length === 0 || bad.length) p.push(`--sweep-levels must be fractions strictly between 0 and 1, comma-separated (e.g. 0.1,0.2,0.3), not "${o.levels.join(',')}"`);
  const badKinds = o.kinds.filter((k) => !(SWEEP_KINDS as readonly string[]).includes(k));
  if (o.kinds.length === 0 || badKinds.length) p.push(`--sweep-kinds must be some of ${SWEEP_KINDS.join(', ')} (comma-separated), not "${o.kinds.join(',')}"`);
  if (!(o.evalText ?? o.text ?? o.calibrate)) p.push('--sweep measures perplexity: give --eval-text TEXT (or --text / --calibrate)');
  if (o.importance !== 'magnitude' && !(o.calibrate ?? o.text)) p.push('activation importance needs a calibration text: give --calibrate TEXT (or --importance magnitude)');
  if (o.recover && !o.text) p.push('--recover needs --text CORPUS to train on');
  if (o.recover && !o.steps) p.push('--recover needs --steps N');
  return p;
}

/** The shape a level of a kind asks for, or null when it removes nothing or everything. */
export function sweepTarget(c: ModelConfig, kind: SweepKind, level: number): ShapeTarget | null {
  if (kind === 'ffn') return { hiddenDim: keptCount(c.hiddenDim, level) };
  if (kind === 'layers') {
    const drop = Math.round(level * c.nLayers);
    return drop > 0 && drop < c.nLayers ? { nLayers: c.nLayers - drop } : null;
  }
  const group = c.nHeads / c.nKvHeads;
  const dropGroups = Math.round(level * c.nKvHeads);
  return dropGroups > 0 && dropGroups < c.nKvHeads ? { nHeads: (c.nKvHeads - dropGroups) * group } : null;
}

export async function sweepModelFile(input: string, opts: SweepOptions): Promise<SweepReport> {
  const problems = sweepOptionProblems(opts);
  if (problems.length) throw new LmflashError(problems.join('; '));
  const m = await loadAnyModel(input, opts.tokenizer);
  const kernels = trainerKernels();
  const calibFile = opts.calibrate ?? opts.text;
  const cal = calibFile ? { tokenizer: m.tokenizer, lines: await linesOf(calibFile, '--calibrate text', opts.split), kernels } : undefined;
  const recover = opts.recover ? { stream: packDocuments(await linesOf(opts.text!, '--text corpus', opts.split), m.tokenizer), settings: recoverSettings(opts) } : null;
  const evalText = (opts.evalText ?? opts.text ?? opts.calibrate)!;
  const evalSplit = opts.evalSplit ?? opts.split;
  const scored = { file: evalText, split: evalSplit, limit: opts.evalLimit };
  const importances: Importance[] = opts.importance ? [opts.importance] : ['activation', 'magnitude'];
  return withTempDir('prune', async (dir) => {
    const file = path.join(dir, 'point.blob');
    const measure = async (b: Buffer) => {
      await writeFile(file, b);
      return figures(file, b, scored);
    };
    const unpruned = await measure(m.blob);
    const points: SweepPoint[] = [];
    for (const kind of opts.kinds) {
      for (const importance of importances) {
        const seen = new Set<string>();
        for (const level of [...opts.levels].sort((a, b) => a - b)) {
          const target = sweepTarget(m.model.config, kind, level);
          if (!target || seen.has(JSON.stringify(target))) continue;
          seen.add(JSON.stringify(target));
          const r = pruneAndRecover(m.model, target, importance as FfnImportance, importance === 'activation' ? cal : undefined, recover, kernels, opts.onStep);
          // at the input's bits, as `prune` writes it (an int4 blob's points are int4 blobs)
          const plain = await measure(writeBlob(r.unrecovered ?? r.model, m.tokenizer, { groupSize: m.groupSize, ...m.bits }).blob);
          const recovered = r.unrecovered ? await measure(writeBlob(r.model, m.tokenizer, { groupSize: m.groupSize, ...m.bits }).blob) : null;
          const point: SweepPoint = {
            kind, importance, level, shape: r.shape.to,
            parameters: plain.parameters, blobBytes: plain.blobBytes, ramBytes: plain.ramBytes,
            perplexity: plain.perplexity,
            recoveredPerplexity: recovered?.perplexity ?? null,
            recoverySeconds: r.recovery?.seconds ?? null,
          };
          points.push(point);
          opts.onPoint?.(formatPoint(point));
        }
      }
    }
    return { unpruned, evalText, evalSplit, evalDocuments: unpruned.documents, recoverySteps: recover ? recover.settings.steps : null, points };
  });
}

function shapeText(s: Shape): string {
  return `${s.nLayers}L d${s.dim} ${s.nHeads}/${s.nKvHeads}h ffn${s.hiddenDim}`;
}

function formatPoint(p: SweepPoint): string {
  return (
    `${p.kind.padEnd(6)} ${p.importance.padEnd(10)} ${`${Math.round(p.level * 100)} %`.padStart(5)}  ${shapeText(p.shape).padEnd(24)} ` +
    `${String(p.parameters).padStart(8)} ${String(p.blobBytes).padStart(8)} ${p.perplexity.toFixed(4).padStart(10)}` +
    (p.recoveredPerplexity !== null ? ` ${p.recoveredPerplexity.toFixed(4).padStart(10)}` : '')
  );
}

export function formatSweep(r: SweepReport): string {
  const u = r.unpruned;
  const head =
    `kind   importance level  shape                    params    bytes perplexity` + (r.recoverySteps !== null ? ` +${r.recoverySteps} steps` : '');
  return [
    `perplexity on ${r.evalDocuments} lines of ${r.evalText} (${r.evalSplit})`,
    head,
    `${'none'.padEnd(6)} ${''.padEnd(10)} ${'0 %'.padStart(5)}  ${shapeText({ dim: u.dim, nLayers: u.nLayers, nHeads: u.nHeads, nKvHeads: u.nKvHeads, hiddenDim: u.hiddenDim }).padEnd(24)} ` +
      `${String(u.parameters).padStart(8)} ${String(u.blobBytes).padStart(8)} ${u.perplexity.toFixed(4).padStart(10)}`,
    ...r.points.map(formatPoint),
  ].join('\n') + '\n';
}

const KIND_NAME: Record<SweepKind, string> = { ffn: 'FFN neurons', layers: 'layers', width: 'heads + channels' };

/** Perplexity (log scale) against blob size, one line per kind and importance (dashed: after recovery), from the unpruned point. */
export function sweepPlotSvg(r: SweepReport, title: string): string {
  const start = { x: r.unpruned.blobBytes / 1024, y: r.unpruned.perplexity };
  const series: PlotSeries[] = [];
  const groups = new Map<string, SweepPoint[]>();
  for (const p of r.points) {
    const key = `${p.kind}/${p.importance}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const ps of groups.values()) {
    const name = `${KIND_NAME[ps[0].kind]}, ${ps[0].importance}`;
    series.push({ label: name, points: [start, ...ps.map((p) => ({ x: p.blobBytes / 1024, y: p.perplexity }))] });
    if (r.recoverySteps !== null) {
      series.push({ label: `${name}, + ${r.recoverySteps} steps recovery`, dashed: true, points: [start, ...ps.map((p) => ({ x: p.blobBytes / 1024, y: p.recoveredPerplexity as number }))] });
    }
  }
  return seriesPlotSvg(series, {
    title,
    xLabel: 'blob size (KiB)',
    yLabel: `perplexity (${r.evalDocuments} lines, ${r.evalSplit} split; log scale)`,
    logY: true,
    reference: { value: r.unpruned.perplexity, label: `unpruned ${r.unpruned.perplexity.toFixed(3)}` },
  });
}
