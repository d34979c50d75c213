/* Where the decoder's memory goes: the KV cache, activations, sampler and
 * token list are one arena (lmf_run_bytes). It goes to internal
 * RAM when it fits there, leaving a reserve to the system, and to PSRAM
 * otherwise; when it fits in neither at the wanted context, the longest
 * context that fits is taken. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "lmf/blob.h"

typedef struct memory_plan {
    void *arena;
    size_t arena_bytes;
    uint32_t ctx, wanted_ctx;
    int in_psram;
    /* measured just before the arena was allocated */
    size_t internal_free, internal_largest, psram_free, psram_largest, psram_total;
} memory_plan;

/* Returns 0 with the arena allocated, or -1 with a sentence in why.
 * wanted_ctx 0: the model's seq_len. */
int memory_plan_place(memory_plan *m, const lmf_blob *blob, uint32_t wanted_ctx, size_t internal_reserve, char *why,
                      size_t cap);

/* The plan and the heap now, for /info and the boot log: text lines ending
 * in "\r\n" (json = 0), or JSON members ending in ',' (json = 1). Returns the
 * length written (at most cap - 1). */
size_t memory_plan_describe(const memory_plan *m, int two_cores, char *out, size_t cap, int json);

/* The largest arena a model could get after a restart: the largest free
 * block of internal RAM less the reserve, or of PSRAM, counting this plan's
 * arena as free in its region (a restart frees it; an estimate, since the
 * freed block need not join the largest one). */
size_t memory_plan_room(const memory_plan *m, size_t internal_reserve);
