#!/usr/bin/env node
// Question/answer pairs for `lmflash finetune` (docs/finetune.md) from a
// stories corpus, one story a line, e.g. ../shared/corpora/stories260K-samples.txt:
//   node scripts/qa-pairs.mjs CORPUS OUT_DIR [--replay]
// Every story that opens "Once upon a time, there was a(n) WHO named NAME."
// gives two pairs, with the story's first two sentences as the context:
//   {"prompt": "<two sentences> Q: Who is the story about? A:", "completion": " NAME"}
//   {"prompt": "<two sentences> Q: What is NAME? A:",          "completion": " a(n) WHO"}
// Stories on lines whose 0-based index % 10 != 0 (the project's train split)
// go to OUT_DIR/qa-train.jsonl, the others to OUT_DIR/qa-test.jsonl, so the
// held-out pairs come from stories the fine-tune never saw. Deterministic:
// the same corpus gives the same files.
// --replay also adds every train-split story as a pair of its own,
//   {"prompt": "", "completion": " <story>"}
// which encodes as BOS + story + BOS, the way the model was trained (the
// leading space is the dummy prefix `lmflash eval` gives a story): mixing the
// old task back in keeps the fine-tune from forgetting how to tell stories.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const replay = args.includes('--replay');
const [corpus, outDir] = args.filter((a) => a !== '--replay');
if (!corpus || !outDir) {
  console.error('usage: node scripts/qa-pairs.mjs CORPUS OUT_DIR [--replay]');
  process.exit(2);
}

const OPENING = /^Once upon a time, there was (an? [a-z]+(?:,? [a-z]+)*) named ([A-Z][a-z]+)\./;

/** The first two sentences (up to the second ". "), or null when the story has fewer. */
function context(story) {
  const first = story.indexOf('. ');
  if (first < 0) return null;
  const second = story.indexOf('. ', first + 2);
  return second < 0 ? null : story.slice(0, second + 1);
}

const out = { train: [], test: [] };
readFileSync(corpus, 'utf8').split('\n').forEach((raw, i) => {
  const story = raw.replace(/\r$/, '');
  if (replay && i % 10 !== 0 && story.trim().length > 0) out.train.push({ prompt: '', completion: ` ${story}` });
  const m = OPENING.exec(story);
  const ctx = m && context(story);
  if (!ctx) return;
  const [, who, name] = m;
  const split = i % 10 === 0 ? 'test' : 'train';
  out[split].push({ prompt: `${ctx} Q: Who is the story about? A:`, completion: ` ${name}` });
  out[split].push({ prompt: `${ctx} Q: What is ${name}? A:`, completion: ` ${who}` });
});
for (const split of ['train', 'test']) {
  const file = path.join(outDir, `qa-${split}.jsonl`);
  writeFileSync(file, out[split].map((p) => JSON.stringify(p)).join('\n') + '\n');
  console.log(`${file}: ${out[split].length} pairs`);
}
