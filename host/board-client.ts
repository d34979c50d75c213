/**
 * The host's side of framed mode (docs/protocol.md) over any duplex byte
 * stream: a serial port, the virtual board's pseudo-terminal. Requests carry
 * ids; replies are routed back by id, so an INFO or PING can be answered in
 * the middle of a generation. A board that stops answering is found by a
 * watchdog (PING after a quiet spell, give up after a second one), so no call
 * hangs when a cable is pulled.
 */
import type { Duplex } from 'node:stream';
import { LmflashError } from '../src/errors.js';
import {
  ERROR_NAMES,
  ErrorCode,
  FrameDecoder,
  HOST_VERSION,
  ProtocolError,
  decodeMessage,
  frameMessage,
  hostVersionProblem,
  needsSamplingBlock,
  SAMPLING_MINOR,
  maxPromptBytes,
  type DoneStats,
  type GenerateParams,
  type Message,
  type Version,
} from '../src/protocol.js';

export interface BoardClientOptions {
  /** What to call the board in messages (a port path). */
  name?: string;
  /** HELLO tries before giving up; each waits twice as long as the one before. */
  helloAttempts?: number;
  /** How long the first HELLO waits for its answer. */
  helloTimeoutMs?: number;
  /** INFO, PING, RESET and CONSOLE fail after this long without their answer. */
  requestTimeoutMs?: number;
  /** While a request is pending and nothing arrived for this long, PING the board. */
  idleMs?: number;
  /** …and if still nothing arrives for this much longer, the board is gone. */
  deadMs?: number;
  /** The protocol version to announce (tests announce others on purpose). */
  version?: Version;
  /** Called by close() after the goodbye, to close the stream's port. */
  closeStream?: () => Promise<void>;
  /** Other programs that have the port open (serial.ts portHolders), asked when the board does not answer. */
  portHolders?: () => { pid: number; name: string }[];
}

export interface BoardHello {
  major: number;
  minor: number;
  maxPayload: number;
  board: string;
}

/** What a generation yields: its tokens as they arrive, then its DONE. */
export type GenerationEvent =
  | { type: 'token'; token: number; bytes: Buffer; receivedAt: bigint }
  | { type: 'done'; stats: DoneStats; receivedAt: bigint };

/** The board answered a request with ERROR. */
export class BoardError extends LmflashError {
  override name = 'BoardError';
  constructor(
    readonly code: number,
    readonly boardMessage: string,
  ) {
    super(boardMessage ? `the board says: ${boardMessage}` : `the board answered ERROR ${ERROR_NAMES[code] ?? code}`);
  }
}

interface Pending {
  /** Returns true when this message ends the request. */
  onMessage(m: Message, receivedAt: bigint): boolean;
  onFail(e: Error): void;
}

const DEFAULTS = {
  helloAttempts: 4,
  helloTimeoutMs: 300,
  requestTimeoutMs: 5000,
  idleMs: 2000,
  deadMs: 4000,
};

export class BoardClient {
  hello: BoardHello | null = null;
  /** Bytes received from the board (for the bench's bytes per token). */
  rxBytes = 0;
  /** Frames received that decoded to a message. */
  rxFrames = 0;
  readonly decoder = new FrameDecoder();
  private readonly opts: Required<Omit<BoardClientOptions, 'closeStream' | 'name' | 'portHolders'>> & BoardClientOptions;
  private readonly pending = new Map<number, Pending>();
  // Ids start at a random point: a board left generating by a host that went away
  // (a USB-UART board cannot tell) should not answer with ids we are about to use.
  private nextId = 1 + Math.floor(Math.random() * 0xfffe);
  private lastRx = Date.now();
  private watchdog: NodeJS.Timeout | null = null;
  private livenessPingSent = false;
  private gone: Error | null = null;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  private readonly onEnd = () => this.failAll(this.goneError('the serial port closed'));
  private readonly onError = (e: Error) => this.failAll(this.goneError(e.message));

  constructor(
    private readonly stream: Duplex,
    opts: BoardClientOptions = {},
  ) {
    this.opts = { ...DEFAULTS, version: HOST_VERSION, ...opts };
    stream.on('data', this.onData);
    stream.on('close', this.onEnd);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
  }

  private get name(): string {
    return this.opts.name ?? 'the port';
  }

  private goneError(why: string): LmflashError {
    return new LmflashError(`the board on ${this.name} went away (${why}): check the cable, then run the command again`);
  }

  // ------------------------------------------------------------ receiving

  private receive(chunk: Buffer): void {
    const at = process.hrtime.bigint();
    this.rxBytes += chunk.length;
    this.lastRx = Date.now();
    this.livenessPingSent = false;
    for (const payload of this.decoder.push(chunk)) {
      let m: Message;
      try {
        m = decodeMessage(payload);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        this.malformed(payload, e);
        continue;
      }
      this.rxFrames++;
      this.dispatch(m, at);
    }
  }

  /** A frame that passed its CRC but not its parser: a firmware bug. Fail the request it answers, if any. */
  private malformed(payload: Buffer, e: ProtocolError): void {
    const id = payload.length >= 4 ? payload.readUInt16LE(2) : 0;
    const p = this.pending.get(id);
    if (!p) return;
    this.finish(id);
    p.onFail(new LmflashError(`the board sent a ${e.message} (a firmware bug: update the firmware with \`lmflash flash\`)`));
  }

  private dispatch(m: Message, at: bigint): void {
    const p = this.pending.get(m.id);
    if (!p) return; // a late answer to a request we gave up on, or news about no request
    if (p.onMessage(m, at)) this.finish(m.id);
  }

  private finish(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.stopWatchdog();
  }

  private failAll(e: Error): void {
    if (!this.gone) this.gone = e;
    const all = [...this.pending.values()];
    this.pending.clear();
    this.stopWatchdog();
    for (const p of all) p.onFail(e);
  }

  // ------------------------------------------------------------ sending

  private allocId(): number {
    for (let i = 0; i < 0xffff; i++) {
      const id = this.nextId;
      this.nextId = id === 0xffff ? 1 : id + 1; // 0 means "no request"
      if (!this.pending.has(id)) return id;
    }
    throw new LmflashError('too many requests in flight');
  }

  private send(m: Message, lead = false): void {
    const frame = frameMessage(m);
    // a lone 0x00 first ends whatever partial frame or console line the board holds
    this.stream.write(lead ? Buffer.concat([Buffer.from([0]), frame]) : frame);
  }

  private track(id: number, p: Pending): void {
    if (this.gone) {
      p.onFail(this.gone);
      return;
    }
    this.pending.set(id, p);
    this.startWatchdog();
  }

  /** Sends a request and resolves with its one answer (ERROR rejects). */
  private request<T>(build: (id: number) => Message, accept: (m: Message) => T | undefined, what: string): Promise<T> {
    const id = this.allocId();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.finish(id);
        reject(new LmflashError(`the board on ${this.name} did not answer ${what} within ${this.opts.requestTimeoutMs / 1000} s: unplug and replug it, then try again`));
      }, this.opts.requestTimeoutMs);
      this.track(id, {
        onMessage: (m) => {
          if (m.type === 'error') {
            clearTimeout(timer);
            reject(new BoardError(m.code, m.message));
            return true;
          }
          const v = accept(m);
          if (v === undefined) return false;
          clearTimeout(timer);
          resolve(v);
          return true;
        },
        onFail: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      if (!this.pending.has(id)) return; // already failed: the board is gone
      this.send(build(id));
    });
  }

  // ------------------------------------------------------------ watchdog

  private startWatchdog(): void {
    if (this.watchdog) return;
    this.lastRx = Date.now();
    this.livenessPingSent = false;
    const tick = Math.max(10, Math.min(this.opts.idleMs, this.opts.deadMs) / 4);
    this.watchdog = setInterval(() => this.checkAlive(), tick);
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  private checkAlive(): void {
    const quiet = Date.now() - this.lastRx;
    if (quiet > this.opts.idleMs + this.opts.deadMs) {
      this.failAll(
        new LmflashError(
          `the board on ${this.name} stopped answering (nothing for ${(quiet / 1000).toFixed(1)} s): it may have reset or been unplugged; run the command again`,
        ),
      );
    } else if (quiet > this.opts.idleMs && !this.livenessPingSent) {
      // a board that is just slow answers PING between two tokens; its PONG resets `lastRx`
      this.livenessPingSent = true;
      this.send({ type: 'ping', id: this.allocId(), data: Buffer.from('alive?') });
    }
  }

  // ------------------------------------------------------------ requests

  /**
   * Switches the board to framed mode: a 0x00 then HELLO, skipping whatever
   * the board prints (boot log, banner, console echo) until a valid answer.
   * Retries with growing waits, since a board that reset on open needs time
   * to boot.
   */
  async connect(): Promise<BoardHello> {
    const { helloAttempts, helloTimeoutMs, version } = this.opts;
    type HelloAnswer = Extract<Message, { type: 'helloReply' | 'error' }>;
    let answered: ((m: HelloAnswer | null) => void) | null = null;
    let failed: ((e: Error) => void) | null = null;
    // one handler for every HELLO sent: a late answer to an earlier try is as good as one to the latest
    const handler: Pending = {
      onMessage: (m) => {
        if (m.type === 'helloReply' || m.type === 'error') answered?.(m);
        return false; // stays registered until connect() is over
      },
      onFail: (e) => failed?.(e),
    };
    const ids: number[] = [];
    try {
      let wait = helloTimeoutMs;
      for (let attempt = 0; attempt < helloAttempts; attempt++, wait *= 2) {
        if (this.gone) throw this.gone;
        const id = this.allocId();
        ids.push(id);
        // not track(): no watchdog PINGs while the board may still be in console mode
        this.pending.set(id, handler);
        const answer = await new Promise<HelloAnswer | null>((resolve, reject) => {
          const timer = setTimeout(() => resolve(null), wait);
          answered = (m) => (clearTimeout(timer), resolve(m));
          failed = (e) => (clearTimeout(timer), reject(e));
          this.decoder.reset(); // console text seen so far is not the start of our answer
          this.send({ type: 'hello', id, major: version.major, minor: version.minor }, true);
        });
        if (!answer) continue;
        if (answer.type === 'error') {
          if (answer.code === ErrorCode.VERSION) throw new LmflashError(`the board refused this lmflash: ${answer.message}`);
          throw new BoardError(answer.code, answer.message);
        }
        const problem = hostVersionProblem(answer, version);
        if (problem) throw new LmflashError(problem);
        this.hello = { major: answer.major, minor: answer.minor, maxPayload: answer.maxPayload, board: answer.board };
        this.cancel(0); // stop a reply that an earlier host left running: nobody reads it now
        return this.hello;
      }
    } finally {
      for (const id of ids) this.finish(id);
    }
    const holders = this.opts.portHolders?.() ?? [];
    if (holders.length)
      throw new LmflashError(
        `no answer from a board on ${this.name} after ${helloAttempts} tries: the port is in use by another program ` +
          `(${holders.map((h) => `${h.name}, pid ${h.pid}`).join('; ')}), which may be taking the board's answers: close it and try again`,
      );
    throw new LmflashError(
      `no answer from a board on ${this.name} after ${helloAttempts} tries: is the port in use by another program (a serial monitor, \`cat\`)? ` +
        'is the lmflash firmware on it (`lmflash flash`)? ' +
        'was it left in its bootloader\'s download mode by an interrupted flash or another tool (run `lmflash reset`, or press its RESET button)? ' +
        'is the baud rate right (--baud)? is it a board at all (`lmflash ports`)?',
    );
  }

  private requireConnected(): void {
    if (!this.hello) throw new LmflashError('not connected to the board: call connect() first (a bug in lmflash)');
  }

  /** The board's INFO: protocol, board, model config, context, RAM, settings, counters. */
  info(): Promise<Record<string, unknown>> {
    this.requireConnected();
    return this.request((id) => ({ type: 'info', id }), (m) => (m.type === 'infoReply' ? m.info : undefined), 'INFO');
  }

  /** Round trip time of a PING (answered even while the board generates). */
  ping(data: Buffer = Buffer.from('lmflash')): Promise<{ ms: number; data: Buffer }> {
    this.requireConnected();
    const t0 = process.hrtime.bigint();
    return this.request(
      (id) => ({ type: 'ping', id, data }),
      (m) => (m.type === 'pong' ? { ms: Number(process.hrtime.bigint() - t0) / 1e6, data: m.data } : undefined),
      'PING',
    );
  }

  /** Stops any generation and restores the board's default console settings. */
  async reset(): Promise<void> {
    this.requireConnected();
    await this.request((id) => ({ type: 'reset', id }), (m) => (m.type === 'ok' ? true : undefined), 'RESET');
  }

  /** Back to console mode (for a person with a terminal program). */
  async toConsole(): Promise<void> {
    this.requireConnected();
    await this.request((id) => ({ type: 'console', id }), (m) => (m.type === 'ok' ? true : undefined), 'CONSOLE');
    this.hello = null;
  }

  /** Asks the board to stop generation `id` (0: whatever runs). Its DONE says `cancelled`. */
  cancel(id = 0): void {
    // CANCEL has no answer of its own: its id only has to differ from pending ones
    if (!this.gone) this.send({ type: 'cancel', id: this.allocId(), target: id });
  }

  /**
   * Starts a generation: TOKEN events as they arrive, then one DONE event.
   * An ERROR answer (BUSY, PROMPT_TOO_LONG, NO_MODEL…) is thrown by the
   * iteration with the board's own message. Leaving the loop early cancels
   * the generation.
   */
  generate(prompt: string | Buffer, params: GenerateParams): Generation {
    this.requireConnected();
    const bytes = typeof prompt === 'string' ? Buffer.from(prompt, 'utf8') : prompt;
    const { major, minor } = this.hello!;
    if (needsSamplingBlock(params) && minor < SAMPLING_MINOR)
      throw new LmflashError(
        `the board's firmware speaks protocol ${major}.${minor}, which has no field for banned tokens or the repetition window ` +
          `(they need ${major}.${SAMPLING_MINOR}): update the firmware with \`lmflash flash\`, or leave out --ban and --repeat-window`,
      );
    const limit = maxPromptBytes(this.hello!.maxPayload, params);
    if (bytes.length > limit) throw new LmflashError(`the prompt is ${bytes.length} bytes; one request to the board carries at most ${limit}: shorten it`);
    const id = this.allocId();
    const gen = new Generation(id, () => this.cancel(id));
    this.track(id, {
      onMessage: (m, at) => gen.accept(m, at),
      onFail: (e) => gen.fail(e),
    });
    if (this.pending.has(id)) this.send({ type: 'generate', id, params, prompt: bytes });
    return gen;
  }

  /**
   * Says goodbye: a board that cannot see the host leave (a USB-UART) is sent
   * back to console mode, so a terminal program finds it as a person expects.
   * Then closes the port (closeStream) and stops listening.
   */
  async close(): Promise<void> {
    if (this.hello && !this.gone) {
      try {
        await Promise.race([this.toConsole(), new Promise((r) => setTimeout(r, 500).unref())]);
      } catch {
        // the board is gone or busy: nothing more to say to it
      }
    }
    this.failAll(new LmflashError('the connection to the board was closed'));
    this.stream.off('data', this.onData);
    this.stream.off('close', this.onEnd);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    await this.opts.closeStream?.();
  }
}

/** One GENERATE's answer as an async iterable of events. */
export class Generation implements AsyncIterable<GenerationEvent> {
  private queue: GenerationEvent[] = [];
  private error: Error | null = null;
  private ended = false;
  private wake: (() => void) | null = null;
  /** The DONE's stats once it has arrived. */
  stats: DoneStats | null = null;

  constructor(
    readonly id: number,
    private readonly sendCancel: () => void,
  ) {}

  /** Takes one message for this generation; true when it is the last. */
  accept(m: Message, at: bigint): boolean {
    if (m.type === 'token') this.push({ type: 'token', token: m.token, bytes: m.bytes, receivedAt: at });
    else if (m.type === 'done') {
      this.stats = m.stats;
      this.push({ type: 'done', stats: m.stats, receivedAt: at });
      this.ended = true;
    } else if (m.type === 'error') this.fail(new BoardError(m.code, m.message));
    else return false;
    this.notify();
    return this.ended || this.error !== null;
  }

  fail(e: Error): void {
    if (this.ended) return;
    this.error = e;
    this.notify();
  }

  /** Asks the board to stop; the iteration still ends with the DONE (reason cancelled). */
  cancel(): void {
    if (!this.ended && !this.error) this.sendCancel();
  }

  private push(e: GenerationEvent): void {
    this.queue.push(e);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
    let finished = false;
    try {
      for (;;) {
        const e = this.queue.shift();
        if (e) {
          yield e;
          if (e.type === 'done') {
            finished = true;
            return;
          }
          continue;
        }
        if (this.error) {
          finished = true;
          throw this.error;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      if (!finished) this.cancel(); // the consumer left early
    }
  }
}
