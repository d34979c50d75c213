/**
 * Where a command talks to a board: a real one on a serial port (named, or
 * the only one plugged in) or the virtual board started for the command.
 * Either way the result is a connected BoardClient in framed mode.
 */
import { BoardClient, type BoardClientOptions } from './board-client.js';
import { closePort, DEFAULT_BAUD, openPort, portHolders, resolvePort } from './serial.js';
import { startSim, type Sim } from './sim.js';

export interface TargetOptions {
  /** A port path; undefined or true: the only board plugged in. */
  port?: string | boolean;
  /** Start the virtual board instead of opening a port. */
  sim?: boolean;
  /** The virtual board's blob. */
  model?: string;
  /** The virtual board waits this long per forward pass (a board's pace, host/pace.ts). */
  stepDelayUs?: number;
  baud?: number;
  client?: BoardClientOptions;
}

export interface Target {
  client: BoardClient;
  portPath: string;
  sim: Sim | null;
  /** Says goodbye to the board, closes the port, stops the virtual board. */
  close(): Promise<void>;
}

export async function openTarget(o: TargetOptions): Promise<Target> {
  const sim = o.sim ? await startSim({ model: o.model, stepDelayUs: o.stepDelayUs }) : null;
  try {
    const portPath = sim ? sim.path : await resolvePort(typeof o.port === 'string' ? o.port : undefined);
    const port = await openPort(portPath, { baudRate: o.baud ?? DEFAULT_BAUD });
    const client = new BoardClient(port, { name: portPath, closeStream: () => closePort(port), portHolders: () => portHolders(portPath), ...o.client });
    try {
      await client.connect();
    } catch (e) {
      await closePort(port);
      throw e;
    }
    return {
      client,
      portPath,
      sim,
      close: async () => {
        await client.close();
        await sim?.stop();
      },
    };
  } catch (e) {
    await sim?.stop();
    throw e;
  }
}
