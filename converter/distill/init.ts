/**
 * `--init teacher`: the student starts as the teacher pruned to the
 * student's shape (Minitron: prune, then distill), by the project's
 * structured pruner (converter/prune-shape.ts: layers by block influence,
 * then attention heads in whole GQA groups, residual channels and FFN
 * neurons by activation importance on the calibration text).
 */
import type { FloatModel, ModelConfig } from '../../src/model.js';
import type { TokenizerData } from '../../src/tokenizer.js';
import type { Kernels } from '../train/kernels.js';
import { pruneToShape, resolveShape, shapeOf, type ShapeReport } from '../prune-shape.js';

/** Throws (LmflashError naming the problem) unless pruning can turn the teacher into this shape. */
export function checkInitFromTeacher(teacher: ModelConfig, target: ModelConfig): void {
  resolveShape(teacher, shapeOf(target));
}

/**
 * The teacher pruned to `target`'s shape; its config is the pruned model's
 * (pruning channels rescales norm_eps, which the student must keep) with the
 * student's context length.
 */
export function initFromTeacher(teacher: FloatModel, target: ModelConfig, tokenizer: TokenizerData, calibration: string[], kernels: Kernels): { model: FloatModel; report: ShapeReport } {
  const r = pruneToShape(teacher, shapeOf(target), 'activation', { tokenizer, lines: calibration, kernels });
  return { model: { config: { ...r.model.config, seqLen: target.seqLen }, weights: r.model.weights }, report: r.report };
}
