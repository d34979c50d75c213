import { defineConfig } from 'vitest/config';

// Real programs run in these tests (the C core, QEMU, sanitizer builds): give them time.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/global-setup.ts'],
    testTimeout: 120_000,
    // In CI, a failed test runs once more: the end-to-end tests drive real
    // processes over real pseudo-terminals on a shared 2-core machine, where
    // timing varies (flash-hostile once timed out under full-suite load after
    // the serial bindings raised an EBADF nobody listened for; host/serial.ts
    // and the esptool adapter now listen). A real bug fails both times.
    retry: process.env.CI ? 1 : 0,
    hookTimeout: 600_000,
  },
});
