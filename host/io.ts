/** Where CLI commands write, so tests can capture output instead of using the real streams. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

export const processIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** Where a command's report goes: stdout, unless `-o -` put the command's output there (then stderr, so the output stays clean). */
export function reportTo(io: CliIO, output: string): (text: string) => void {
  return output === '-' ? io.err : io.out;
}
