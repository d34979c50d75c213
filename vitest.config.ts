import { defineConfig } from 'vitest/config';

// Real programs run in these tests (the C core, QEMU, sanitizer builds): give them time.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
