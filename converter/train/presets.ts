/**
 * Named model shapes for `lmflash train transformer --config NAME`. The
 * vocabulary always comes from the tokenizer. docs/training.md lists each
 * one's parameters, flash bytes and RAM per board (computed by
 * `lmflash inspect --board` on a blob of that shape).
 */
import type { ShapeOptions } from './session.js';

export interface ShapePreset extends Omit<ShapeOptions, 'sharedClassifier'> {
  about: string;
}

export const PRESETS: Record<string, ShapePreset> = {
  nano: { dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 96, seqLen: 256, about: 'a few minutes on a laptop; the demo model' },
  micro: { dim: 48, nLayers: 4, nHeads: 6, nKvHeads: 3, hiddenDim: 128, seqLen: 256, about: 'between nano and stories260K' },
  stories260k: { dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, hiddenDim: 172, seqLen: 512, about: "llama2.c's stories260K shape" },
  small: { dim: 128, nLayers: 6, nHeads: 8, nKvHeads: 4, hiddenDim: 344, seqLen: 512, about: 'about 1.15 M parameters with a 512-token vocabulary; hours' },
};

export const PRESET_NAMES = Object.keys(PRESETS);
