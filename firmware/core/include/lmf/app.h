/* The command-line driver shared by every port that runs the core as a program
 * (the host executable and the QEMU/Xtensa image). Both call lmf_app_main with
 * the blob already in memory, so their output is byte-identical by construction. */
#ifndef LMF_APP_H
#define LMF_APP_H

#include <stddef.h>
#include <stdint.h>

typedef struct lmf_port {
    /* Write bytes to standard output / standard error. */
    void (*write_out)(void *ctx, const char *data, size_t len);
    void (*write_err)(void *ctx, const char *data, size_t len);
    /* A free-running cycle counter, or NULL when the port has none. Used only
     * for the instruction counts that benchmarks print. */
    uint32_t (*cycle_count)(void *ctx);
    void *ctx;
} lmf_port;

/* Runs one job described by argv (see lmf_app_usage in app.c) against the blob.
 * arena: the only memory the core uses; its size bounds the context length.
 * Returns the process exit code (0 = success). */
int lmf_app_main(int argc, char **argv, const uint8_t *blob, size_t blob_size,
                 uint8_t *arena, size_t arena_size, const lmf_port *port);

#endif
