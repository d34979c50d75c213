/**
 * Training checkpoints: everything a run needs to continue exactly where it
 * stopped (model config, settings, step, weights, AdamW moments, the log, the
 * best validation so far), so that the loss curve after a resume is the one
 * the uninterrupted run would have drawn, bit for bit.
 *
 * Layout: "LMFT", u32 version, u32 JSON header length, the JSON header
 * (padded with spaces to 4 bytes), then params, AdamW m and v as
 * little-endian float32, each `paramCount` values, then (when kept) the best
 * validation weights.
 */
import { LmflashError } from '../../src/errors.js';
import { configProblems, type ModelConfig } from '../../src/model.js';
import { paramLayout } from './params.js';
import type { TrainSettings, TrainState } from './trainer.js';

export const CHECKPOINT_MAGIC = 'LMFT';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointHeader {
  config: ModelConfig;
  settings: TrainSettings;
  /** sha256 of the tokenizer file's pieces and of the training text: a resume must use the same ones. */
  tokenizerDigest: string;
  textDigest: string;
  step: number;
  tokensSeen: number;
  seconds: number;
  log: TrainState['log'];
  best: { step: number; valLoss: number } | null;
}

export interface Checkpoint {
  header: CheckpointHeader;
  state: TrainState;
}

export function encodeCheckpoint(header: Omit<CheckpointHeader, 'step' | 'tokensSeen' | 'seconds' | 'log' | 'best'>, state: TrainState): Buffer {
  const full: CheckpointHeader = {
    ...header,
    step: state.step,
    tokensSeen: state.tokensSeen,
    seconds: state.seconds,
    log: state.log,
    best: state.best ? { step: state.best.step, valLoss: state.best.valLoss } : null,
  };
  let json = Buffer.from(JSON.stringify(full), 'utf8');
  const pad = (4 - (json.length % 4)) % 4;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const head = Buffer.alloc(12);
  head.write(CHECKPOINT_MAGIC, 0, 'latin1');
  head.writeUInt32LE(CHECKPOINT_VERSION, 4);
  head.writeUInt32LE(json.length, 8);
  const arrays = [state.params, state.adam.m, state.adam.v, ...(state.best ? [state.best.params] : [])];
  return Buffer.concat([head, json, ...arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))]);
}

function bad(what: string): LmflashError {
  return new LmflashError(`not a usable lmflash training checkpoint: ${what} (pass a file written by \`lmflash train transformer\`)`);
}

export function decodeCheckpoint(buf: Uint8Array): Checkpoint {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 12 || b.toString('latin1', 0, 4) !== CHECKPOINT_MAGIC) throw bad(`it does not start with "${CHECKPOINT_MAGIC}"`);
  const version = b.readUInt32LE(4);
  if (version !== CHECKPOINT_VERSION) throw bad(`version ${version}; this lmflash reads version ${CHECKPOINT_VERSION}`);
  const jsonLen = b.readUInt32LE(8);
  if (12 + jsonLen > b.length) throw bad('its header runs past the end of the file (truncated?)');
  let header: CheckpointHeader;
  try {
    header = JSON.parse(b.toString('utf8', 12, 12 + jsonLen)) as CheckpointHeader;
  } catch {
    throw bad('its header is not valid JSON');
  }
  const problems = header?.config ? configProblems(header.config) : ['no model config'];
  if (problems.length) throw bad(problems.join('; '));
  const n = paramLayout(header.config).total;
  const arrays = header.best ? 4 : 3;
  const start = 12 + jsonLen;
  if (b.length !== start + arrays * n * 4) throw bad(`it holds ${b.length - start} bytes of weights, expected ${arrays * n * 4} (truncated?)`);
  const take = (i: number) => {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(b.subarray(start + i * n * 4, start + (i + 1) * n * 4));
    return out;
  };
  const state: TrainState = {
    step: header.step,
    tokensSeen: header.tokensSeen,
    seconds: header.seconds,
    params: take(0),
    adam: { m: take(1), v: take(2) },
    log: header.log,
    best: header.best ? { ...header.best, params: take(3) } : null,
  };
  return { header, state };
}
