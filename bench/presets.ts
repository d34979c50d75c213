/**
 * The table of docs/training.md: for each `train transformer --config`
 * preset with tok512's 512 tokens, its parameters, the int8 blob's bytes and,
 * per board profile, where its arena goes at the full context and the
 * estimated tokens/s, all from the code `lmflash inspect --board` uses
 * (src/boards.ts planOnBoard) on a blob of that shape.
 *   node dist/bench/presets.js
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeTokenizerBin, tokenizerDataFromBin } from '../converter/tokenizer/vocab-file.js';
import { toFloatModel, initParams } from '../converter/train/params.js';
import { PRESETS } from '../converter/train/presets.js';
import { modelConfigFor } from '../converter/train/session.js';
import { projectRoot } from '../host/native.js';
import { readBlob, writeBlob } from '../src/blob.js';
import { BOARD_PROFILES, fmtBytes, planOnBoard } from '../src/boards.js';
import { parameterCount } from '../src/model.js';

const tok = tokenizerDataFromBin(decodeTokenizerBin(readFileSync(path.resolve(projectRoot(), '../shared/models/tok512.bin'))));
console.log(`| preset | shape | parameters | blob (flash) | ${BOARD_PROFILES.map((b) => b.id).join(' | ')} |`);
console.log(`|---|---|---|---|${BOARD_PROFILES.map(() => '---').join('|')}|`);
for (const [name, p] of Object.entries(PRESETS)) {
  const c = modelConfigFor({ ...p, sharedClassifier: true }, tok.vocabSize);
  const { blob } = writeBlob(toFloatModel(c, initParams(c, 1)), tok);
  const view = readBlob(blob);
  const cells = BOARD_PROFILES.map((b) => {
    const plan = planOnBoard(view, b);
    if (!plan.flash.fits) return 'does not fit in flash';
    if (plan.ram.place === 'none') return `no RAM for context 1`;
    const ctx = plan.ram.context === c.seqLen ? '' : `, context ${plan.ram.context}`;
    return `${fmtBytes(plan.ram.plan.totalBytes)} ${plan.ram.place}${ctx}${plan.speed ? `, ~${plan.speed.atEnd.toFixed(0)} tok/s` : ''}`;
  });
  const shape = `dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads}/${c.nKvHeads} heads, hidden ${c.hiddenDim}, seq ${c.seqLen}`;
  console.log(`| ${name} | ${shape} | ${parameterCount(c).toLocaleString('en-US')} | ${blob.length.toLocaleString('en-US')} B | ${cells.join(' | ')} |`);
}
