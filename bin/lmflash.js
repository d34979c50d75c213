#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (npm run build).
import('../dist/host/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/host/cli.js')) {
    console.error('lmflash is not built yet: run `npm run build` in the project folder first.');
    process.exit(1);
  }
  throw err;
});
