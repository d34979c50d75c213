/**
 * Console mode the way a person uses it: picocom, a serial terminal program,
 * runs in a tmux window on the virtual board's port; keys are typed with
 * send-keys and the screen is read with capture-pane.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSim, type Sim } from '../host/sim.js';
import { chainBlob } from './chain-model.js';
import { coreJson, storiesBlob, tempDir } from './native-helpers.js';
import { requireTool } from './required-tools.js';

const haveTools = ['tmux', 'picocom'].every((t) => spawnSync('which', [t]).status === 0);
const session = `lmflash-console-${process.pid}`;
let sim: Sim | null = null;

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { encoding: 'utf8' });
}

/** The terminal's screen, wrapped lines joined. */
const screen = () => tmux('capture-pane', '-p', '-J', '-t', session);

async function waitForScreen(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = screen();
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`the screen never matched ${pattern}:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function typeLine(text: string): Promise<void> {
  tmux('send-keys', '-t', session, '-l', text);
  tmux('send-keys', '-t', session, 'Enter');
}

async function openTerminal(model: string, stepDelayUs = 0): Promise<void> {
  sim = await startSim({ model, stepDelayUs });
  // picocom maps nothing by default: Enter sends CR, the board echoes and answers with CR LF
  tmux('new-session', '-d', '-s', session, '-x', '220', '-y', '50', `picocom -q -b 115200 ${sim.path}`);
  await new Promise((r) => setTimeout(r, 300));
  await typeLine('');
  await waitForScreen(/> $/m);
}

afterEach(async () => {
  spawnSync('tmux', ['kill-session', '-t', session]);
  await sim?.stop();
  sim = null;
});

requireTool('tmux and picocom', haveTools ? null : 'install tmux and picocom (apt-get install -y tmux picocom)');

describe.runIf(haveTools)('console mode in a serial terminal', () => {
  let stories: string;
  beforeAll(async () => {
    stories = await storiesBlob();
  });

  it('streams a reply to a typed line, then stats and a new prompt', async () => {
    await openTerminal(stories);
    await typeLine('/temp 0');
    await typeLine('/max 24');
    await typeLine('Once upon a time');
    const text = await waitForScreen(/\[24 tokens, [\d.]+ tok\/s\]\s*\n> /);
    const expected = coreJson(stories, ['-p', 'Once upon a time', '-n', '24']).text;
    // the board sends newlines as CR LF; tmux shows them as line breaks
    expect(text.replace(/\n/g, '')).toContain(`Once upon a time${expected.replace(/\n/g, '')}`);
  });

  it('stops a reply on Ctrl-C and takes the next line', async () => {
    await openTerminal(stories, 20_000); // a board's pace, so that Ctrl-C lands mid-reply
    await typeLine('/max 2000');
    await typeLine('Lily');
    await new Promise((r) => setTimeout(r, 50));
    tmux('send-keys', '-t', session, 'C-c');
    await waitForScreen(/tokens, [\d.]+ tok\/s, stopped\]/);
    await typeLine('/help');
    await waitForScreen(/Ctrl-C +stop the reply/);
  });

  it('shows Chinese and emoji made of byte-fallback tokens whole', async () => {
    const file = path.join(tempDir('chain'), 'chain.blob');
    writeFileSync(file, chainBlob(Buffer.from('中文😀', 'utf8')));
    await openTerminal(file);
    await typeLine('/temp 0');
    await typeLine('中');
    const text = await waitForScreen(/tok\/s\]/);
    // the typed line (echoed), then the reply on the next line
    expect(text).toMatch(/^> 中\n文😀\n\[8 tokens/m);
    expect(text).not.toContain('\uFFFD');
  });
});
