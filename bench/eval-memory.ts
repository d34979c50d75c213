/**
 * Peak memory of `lmflash eval --native` for `npm run bench` (issue 14: it
 * used to hold every logit row of a batch, 11.9 GB on this job): the KJV
 * order-4 word model trained by the CLI on the train split, scored on the test
 * split through the native core, against the TypeScript scorer in the same
 * run. Peak RSS is each process's VmHWM (the kernel's high-water mark), read
 * from /proc while it runs, for the node process and its lmf-run child.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Row } from './ngram.js';

function vmHwmKb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // gone between two looks
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Peak {
  nodeMb: number;
  childMb: number;
  seconds: number;
  stdout: string;
}

/** Runs the CLI and samples the peak RSS of it and its children every 20 ms (VmHWM only grows: a sample misses nothing but the last 20 ms). */
function peakRss(root: string, args: string[]): Promise<Peak> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [path.join(root, 'bin/lmflash.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    let node = 0;
    const kids = new Map<number, number>();
    const sample = () => {
      node = Math.max(node, vmHwmKb(child.pid!));
      for (const k of childrenOf(child.pid!)) kids.set(k, Math.max(kids.get(k) ?? 0, vmHwmKb(k)));
    };
    const timer = setInterval(sample, 20);
    child.on('exit', () => clearInterval(timer));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`lmflash ${args.join(' ')} failed: ${err}`));
      resolve({ nodeMb: node / 1024, childMb: Math.max(0, ...kids.values()) / 1024, seconds: (performance.now() - t0) / 1000, stdout: out });
    });
  });
}

export async function evalMemoryFigures(root: string, shared: string, dir: string): Promise<Row[]> {
  const corpus = path.join(shared, 'corpora/kjv-verses.txt');
  const blob = path.join(dir, 'kjv-order4-words.blob');
  const train = spawnSync(process.execPath, [path.join(root, 'bin/lmflash.js'), 'train', 'ngram', corpus, '--order', '4', '--tokens', 'words', '--split', 'train', '-o', blob], { encoding: 'utf8' });
  if (train.status !== 0) throw new Error(`train ngram failed: ${train.stderr}`);
  const evalArgs = ['eval', blob, '--text', corpus, '--split', 'test', '--json'];
  const native = await peakRss(root, [...evalArgs, '--native']);
  const ts = await peakRss(root, evalArgs);
  const pn = JSON.parse(native.stdout) as { perplexity: number; tokens: number };
  const pt = JSON.parse(ts.stdout) as { perplexity: number };
  const same = pn.perplexity === pt.perplexity ? 'same perplexity bit for bit' : `PERPLEXITY DIFFERS: ${pn.perplexity} vs ${pt.perplexity}`;
  return [
    [
      'eval --native peak RSS (MB)',
      native.nodeMb.toFixed(0),
      `node process; lmf-run child ${native.childMb.toFixed(0)} MB; KJV order-4 words, test split, ${pn.tokens} predictions in ${native.seconds.toFixed(1)} s; goal < 200 (11,926 MB before streaming, at 7baf132)`,
    ],
    ['eval (TypeScript scorer) peak RSS (MB)', ts.nodeMb.toFixed(0), `same job in ${ts.seconds.toFixed(1)} s; ${same} (${pn.perplexity.toFixed(4)})`],
  ];
}
