/**
 * `lmflash upload-model [--port P] [--baud B] [--restart] MODEL.blob`: a new
 * model through the running firmware's framed protocol (protocol 1.1, "Model
 * upload" in docs/protocol.md), no bootloader. The board writes it beside the
 * model it runs, each chunk checked by CRC-32 after it is read back from
 * flash; a second run after an interruption resumes where the first stopped
 * (after checking the CRC of what the board already has); the board switches
 * to the new model only once all of it is in flash and verified, so the old
 * one stays usable until then.
 */
import type { Command } from 'commander';
import { crc32 } from 'node:zlib';
import { LmflashError } from '../../src/errors.js';
import {
  ErrorCode,
  FrameDecoder,
  UPLOAD_CHUNK_MAX,
  UPLOAD_RESTART,
  decodeMessage,
  frameMessage,
  type Message,
  type UploadStatus,
} from '../../src/protocol.js';
import { BoardClient } from '../board-client.js';
import { readModelFile } from '../flash.js';
import { Progress } from '../progress.js';
import { processIO, type CliIO } from '../io.js';
import { closePort, DEFAULT_BAUD, openPort, parseBaud, resolvePort, type SerialPort } from '../serial.js';

export interface UploadOptions {
  port?: string;
  baud?: number;
  model: string;
  /** Discard a partial upload on the board and start from byte 0. */
  restart?: boolean;
  /** UPLOAD_DATA frames in flight (default 4). */
  window?: number;
  /** Tries at the same offset before giving up (default 5). */
  maxRetries?: number;
  progress?: boolean;
  tty?: boolean;
}

export interface UploadResult {
  port: string;
  bytes: number;
  crc: number;
  /** Where the upload started: > 0 when it resumed an interrupted one. */
  resumedFrom: number;
  slotOffset: number;
  sequence: number;
  /** Chunks the board rejected and got again. */
  retries: number;
  seconds: number;
}

class BoardSaid extends LmflashError {
  constructor(
    readonly code: number,
    readonly boardMessage: string,
  ) {
    super(`the board says: ${boardMessage}`);
  }
}

/** Upload requests and their answers, routed by id, beside the BoardClient that did the HELLO. */
class UploadLink {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, { resolve(m: Message): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private nextId = 0x8000 + Math.floor(Math.random() * 0x4000);
  private gone: Error | null = null;
  private readonly onData = (chunk: Buffer) => {
    for (const payload of this.decoder.push(chunk)) {
      let m: Message;
      try {
        m = decodeMessage(payload);
      } catch {
        continue;
      }
      const p = this.pending.get(m.id);
      if (!p) continue;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.type === 'error') p.reject(new BoardSaid(m.code, m.message));
      else p.resolve(m);
    }
  };
  private readonly onClose = () => this.failAll(new LmflashError(`the port ${this.name} closed during the upload: run the command again to resume`));

  constructor(
    private readonly port: SerialPort,
    private readonly name: string,
  ) {
    port.on('data', this.onData);
    port.on('close', this.onClose);
  }

  private failAll(e: Error): void {
    this.gone = e;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(e);
    }
  }

  request(build: (id: number) => Message, timeoutMs: number): Promise<Message> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId;
    this.nextId = id >= 0xfffe ? 0x8000 : id + 1;
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new LmflashError(`the board on ${this.name} stopped answering during the upload: check the cable, then run the command again to resume`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.port.write(frameMessage(build(id)));
    });
  }

  close(): void {
    this.port.off('data', this.onData);
    this.port.off('close', this.onClose);
    this.failAll(new LmflashError('the upload was closed'));
  }
}

function expectStatus(m: Message): UploadStatus {
  if (m.type !== 'uploadStatus') throw new LmflashError(`the board answered an upload request with ${m.type} (a firmware bug: flash the firmware again)`);
  return m;
}

export async function uploadModel(o: UploadOptions, io: CliIO): Promise<UploadResult> {
  const blob = readModelFile(o.model);
  const crc = crc32(blob) >>> 0;
  const portPath = await resolvePort(o.port);
  const port = await openPort(portPath, { baudRate: o.baud ?? DEFAULT_BAUD });
  const client = new BoardClient(port, { name: portPath, closeStream: () => closePort(port) });
  let link: UploadLink | null = null;
  try {
    const hello = await client.connect();
    if (hello.minor < 1) {
      throw new LmflashError(
        `the firmware on ${portPath} speaks protocol ${hello.major}.${hello.minor}, which has no model upload: update it with \`lmflash flash --firmware BUILD_DIR\`, or write the model through the bootloader with \`lmflash flash --model ${o.model}\``,
      );
    }
    link = new UploadLink(port, portPath);
    const l = link;
    const begin = async (restart: boolean): Promise<UploadStatus> => {
      try {
        return expectStatus(await l.request((id) => ({ type: 'uploadBegin', id, size: blob.length, crc, flags: restart ? UPLOAD_RESTART : 0 }), 10_000));
      } catch (e) {
        if (e instanceof BoardSaid && e.code === ErrorCode.UNKNOWN_TYPE)
          throw new LmflashError(`the firmware on ${portPath} does not take model uploads: update it with \`lmflash flash --firmware BUILD_DIR\`, or use \`lmflash flash --model ${o.model}\``);
        throw e;
      }
    };
    /** The board's status, with what it already has checked against this model. */
    const resync = async (restart: boolean): Promise<UploadStatus> => {
      let st = await begin(restart);
      if (st.received > 0 && st.receivedCrc !== crc32(blob.subarray(0, st.received)) >>> 0) {
        io.err(`lmflash: the partial upload on the board (${st.received} bytes) does not match this model: starting over\n`);
        st = await begin(true);
      }
      return st;
    };
    const t0 = performance.now();
    let st = await resync(!!o.restart);
    const resumedFrom = st.received;
    if (resumedFrom > 0) io.err(`resuming an interrupted upload at byte ${resumedFrom.toLocaleString('en')} of ${blob.length.toLocaleString('en')} (${((100 * resumedFrom) / blob.length).toFixed(0)}%)\n`);
    io.err(`uploading ${o.model} (${blob.length.toLocaleString('en')} bytes, CRC-32 ${crc.toString(16).padStart(8, '0')}) to ${portPath} beside the model it runs\n`);
    const chunk = Math.min(st.maxChunk || UPLOAD_CHUNK_MAX, UPLOAD_CHUNK_MAX);
    const window = Math.max(1, o.window ?? 4);
    const maxRetries = o.maxRetries ?? 5;
    const progress = new Progress(io, !!o.tty);
    progress.begin();
    let acked = st.received;
    let retries = 0;
    // failures since the upload last got further than it had ever been
    let best = acked;
    let stuck = 0;
    // Ctrl-C: finish the chunks in flight, then stop and say what the board holds.
    let interrupted = false;
    const onCtrlC = () => void (interrupted = true);
    process.on('SIGINT', onCtrlC);
    try {
      while (acked < blob.length) {
        if (interrupted) {
          throw new LmflashError(
            `interrupted (Ctrl-C) at byte ${acked.toLocaleString('en')} of ${blob.length.toLocaleString('en')}: the board keeps running its current model, ` +
              `with the ${acked.toLocaleString('en')} bytes sent kept beside it; run the same command again to resume from there`,
          );
        }
        const inflight: Promise<UploadStatus>[] = [];
        for (let next = acked; next < blob.length && inflight.length < window; ) {
          const n = Math.min(chunk, blob.length - next);
          const data = blob.subarray(next, next + n);
          const offset = next;
          inflight.push(l.request((id) => ({ type: 'uploadData', id, offset, crc: crc32(data) >>> 0, data: Buffer.from(data) }), 15_000).then(expectStatus));
          next += n;
        }
        const results = await Promise.allSettled(inflight);
        let failure: Error | null = null;
        for (const r of results) {
          if (r.status === 'fulfilled') acked = Math.max(acked, r.value.received);
          else if (!failure) failure = r.reason as Error;
        }
        if (acked > best) {
          best = acked;
          stuck = 0;
        }
        if (o.progress !== false) progress.update('model upload', acked, blob.length, acked === blob.length);
        if (!failure) continue;
        if (!(failure instanceof BoardSaid)) throw failure; // the board went away: the next run resumes
        if (failure.code === ErrorCode.TOO_BIG || failure.code === ErrorCode.FLASH) throw failure;
        retries++;
        if (++stuck > maxRetries) {
          throw new LmflashError(`the board kept rejecting the data at byte ${acked} (${failure.boardMessage}); it keeps its current model. Run the command again; if it fails the same way the flash may be worn: flash with \`lmflash flash --model ${o.model} --erase-all\``);
        }
        if (failure.code !== ErrorCode.UPLOAD_STATE) io.err(`\nlmflash: ${failure.boardMessage}\n`);
        st = await resync(false);
        acked = st.received;
      }
    } finally {
      process.off('SIGINT', onCtrlC);
    }
    let done: Message;
    try {
      done = await l.request((id) => ({ type: 'uploadCommit', id, size: blob.length, crc }), 60_000);
    } catch (e) {
      if (e instanceof BoardSaid) throw new LmflashError(`the board did not switch to the new model: ${e.boardMessage}`);
      throw e;
    }
    if (done.type !== 'uploadDone') throw new LmflashError(`the board answered the commit with ${done.type} (a firmware bug)`);
    const seconds = (performance.now() - t0) / 1000;
    io.err(`verified on the board (CRC-32 ${crc.toString(16).padStart(8, '0')}) and committed as model #${done.sequence} at model partition + 0x${done.slotOffset.toString(16)}: the board runs it now\n`);
    return { port: portPath, bytes: blob.length, crc, resumedFrom, slotOffset: done.slotOffset, sequence: done.sequence, retries, seconds };
  } finally {
    link?.close();
    await client.close();
  }
}

export function register(program: Command, io: CliIO): void {
  program
    .command('upload-model')
    .description('send a new model to a board through its running firmware (no bootloader); resumable, verified before the board switches to it')
    .argument('<blob>', 'the model blob')
    .option('--port [path]', "the board's serial port (no path or no option: the only board plugged in)")
    .option('--baud <rate>', 'serial baud rate (USB-Serial-JTAG ignores it)', parseBaud, DEFAULT_BAUD)
    .option('--restart', 'discard a partial upload on the board and start from the beginning')
    .action(async (model: string, opts: { port?: string | true; baud: number; restart?: boolean }) => {
      const r = await uploadModel(
        { port: typeof opts.port === 'string' ? opts.port : undefined, baud: opts.baud, model, restart: opts.restart, tty: io === processIO && !!process.stderr.isTTY },
        io,
      );
      io.out(
        `uploaded ${model} (${r.bytes.toLocaleString('en')} bytes${r.resumedFrom ? `, resumed at byte ${r.resumedFrom.toLocaleString('en')}` : ''}${r.retries ? `, ${r.retries} chunk(s) sent again` : ''}) in ${r.seconds.toFixed(1)} s to ${r.port}\n`,
      );
    });
}
