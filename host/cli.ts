/** Entry point of the lmflash executable (bin/lmflash.js imports the compiled dist/host/cli.js). */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2));
