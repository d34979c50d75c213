/**
 * Serial figures against the virtual board: bytes on the wire per generated
 * token, and the host's own delay from a TOKEN frame's arrival (the serial
 * port's 'data' event) to its text being written to the output, through the
 * frame decoder, the generation's async iterator and the StringDecoder.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { BoardClient } from '../host/board-client.js';
import { closePort, openPort } from '../host/serial.js';
import { startSim } from '../host/sim.js';
import type { GenerateParams } from '../src/protocol.js';

export interface SerialFigures {
  bytesPerToken: { value: string; note: string };
  burst: { value: string; note: string };
  paced: { value: string; note: string };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

interface Run {
  rxBytes: number;
  tokens: number;
  delaysUs: number[];
}

/** Generates `runs` replies and times each token's arrival → write to `sink`. */
async function measure(blobPath: string, stepDelayUs: number, runs: number): Promise<Run> {
  const sim = await startSim({ model: blobPath, stepDelayUs });
  const port = await openPort(sim.path);
  const client = new BoardClient(port, { name: sim.path, closeStream: () => closePort(port) });
  const sink = openSync('/dev/null', 'w'); // stands in for stdout: a real write(2) per piece of text
  const total: Run = { rxBytes: 0, tokens: 0, delaysUs: [] };
  try {
    await client.connect();
    for (let r = 0; r < runs; r++) {
      const params: GenerateParams = { temperature: 0.8, topP: 0.9, topK: 0, repeatPenalty: 1, maxTokens: 252, seed: 1000 + r };
      const decoder = new StringDecoder('utf8');
      const rx0 = client.rxBytes;
      for await (const e of client.generate('Once upon a time', params)) {
        if (e.type === 'done') {
          total.tokens += e.stats.generatedTokens;
          break;
        }
        const text = decoder.write(e.bytes);
        if (text) writeSync(sink, text);
        total.delaysUs.push(Number(process.hrtime.bigint() - e.receivedAt) / 1000);
      }
      total.rxBytes += client.rxBytes - rx0;
    }
  } finally {
    closeSync(sink);
    await client.close();
    await sim.stop();
  }
  return total;
}

export async function serialFigures(blobPath: string): Promise<SerialFigures> {
  const burst = await measure(blobPath, 0, 5);
  // 1 ms per forward pass: one TOKEN frame per read, as from a real board (a few ms per token)
  const paced = await measure(blobPath, 1000, 2);
  const fmt = (r: Run) => `${percentile(r.delaysUs, 0.5).toFixed(0)} / ${percentile(r.delaysUs, 0.99).toFixed(0)}`;
  return {
    bytesPerToken: {
      value: (burst.rxBytes / burst.tokens).toFixed(1),
      note: `frame bytes received / generated tokens (TOKEN frames and the DONE), ${burst.tokens} tokens of stories260K`,
    },
    burst: {
      value: fmt(burst),
      note: `µs median / p99, TOKEN frame arrival -> text written; virtual board at full speed (frames arrive in bursts), ${burst.delaysUs.length} tokens`,
    },
    paced: {
      value: fmt(paced),
      note: `µs median / p99, the same with the virtual board slowed to 1 ms per token (one frame per read, like a board), ${paced.delaysUs.length} tokens`,
    },
  };
}
