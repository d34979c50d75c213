/* Memory placement (memory_plan.h). ESP-IDF v5.4 APIs, from
 * components/heap/include/esp_heap_caps.h: heap_caps_get_largest_free_block,
 * heap_caps_get_free_size, heap_caps_get_total_size, heap_caps_aligned_alloc
 * (16-byte alignment: the core's arena rule, and PIE's 128-bit loads), with
 * MALLOC_CAP_INTERNAL / MALLOC_CAP_SPIRAM and MALLOC_CAP_8BIT. */
#include "memory_plan.h"

#include <stdio.h>
#include <string.h>

#include "esp_heap_caps.h"
#include "lmf/session.h"

#define INTERNAL_CAPS (MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT)
#define PSRAM_CAPS (MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT)
/* an aligned allocation can need up to this much more than it asks for */
#define ALIGN_SLACK 64


int memory_plan_place(memory_plan *m, const lmf_blob *blob, uint32_t wanted_ctx, size_t internal_reserve, char *why,
                      size_t cap)
{
    size_t internal_room, psram_room, need;
    uint32_t ctx_internal, ctx_psram;

    memset(m, 0, sizeof *m);
    if (wanted_ctx == 0 || wanted_ctx > blob->cfg.seq_len) wanted_ctx = blob->cfg.seq_len;
    m->wanted_ctx = wanted_ctx;
    m->internal_free = heap_caps_get_free_size(INTERNAL_CAPS);
    m->internal_largest = heap_caps_get_largest_free_block(INTERNAL_CAPS);
    m->psram_free = heap_caps_get_free_size(PSRAM_CAPS);
    m->psram_largest = heap_caps_get_largest_free_block(PSRAM_CAPS);
    m->psram_total = heap_caps_get_total_size(PSRAM_CAPS);

    internal_room = m->internal_largest > internal_reserve + ALIGN_SLACK ? m->internal_largest - internal_reserve - ALIGN_SLACK : 0;
    psram_room = m->psram_largest > ALIGN_SLACK ? m->psram_largest - ALIGN_SLACK : 0;
    need = lmf_run_bytes(blob, wanted_ctx);
    if (need <= internal_room) {
        m->ctx = wanted_ctx;
    } else if (need <= psram_room) {
        m->ctx = wanted_ctx;
        m->in_psram = 1;
    } else {
        /* neither holds the whole context: the longer of what each holds */
        ctx_internal = lmf_run_max_ctx(blob, internal_room);
        ctx_psram = lmf_run_max_ctx(blob, psram_room);
        m->in_psram = ctx_psram > ctx_internal;
        m->ctx = m->in_psram ? ctx_psram : ctx_internal;
        if (m->ctx == 0) {
            snprintf(why, cap,
                     "the model needs %u bytes of RAM even for one token of context and the largest free block is "
                     "%u bytes: use a smaller model (`lmflash inspect MODEL.blob --board ...`)",
                     (unsigned)lmf_run_bytes(blob, 1), (unsigned)(m->internal_largest > m->psram_largest ? m->internal_largest : m->psram_largest));
            return -1;
        }
    }
    m->arena_bytes = lmf_run_bytes(blob, m->ctx);
    m->arena = heap_caps_aligned_alloc(16, m->arena_bytes, m->in_psram ? PSRAM_CAPS : INTERNAL_CAPS);
    if (!m->arena) {
        snprintf(why, cap, "cannot allocate %u bytes of %s for the model's memory", (unsigned)m->arena_bytes,
                 m->in_psram ? "PSRAM" : "internal RAM");
        return -1;
    }
    return 0;
}

size_t memory_plan_describe(const memory_plan *m, int two_cores, char *out, size_t cap, int json)
{
    int n;
    size_t internal_free = heap_caps_get_free_size(INTERNAL_CAPS);
    size_t psram_free = heap_caps_get_free_size(PSRAM_CAPS);
    if (cap == 0) return 0;
    if (json)
        n = snprintf(out, cap,
                     "\"memory\":{\"arena_bytes\":%u,\"arena_in\":\"%s\",\"ctx\":%u,\"wanted_ctx\":%u,"
                     "\"free_internal\":%u,\"largest_internal\":%u,\"free_psram\":%u,\"total_psram\":%u,"
                     "\"two_cores\":%s},",
                     (unsigned)m->arena_bytes, m->arena ? (m->in_psram ? "psram" : "internal") : "none", (unsigned)m->ctx,
                     (unsigned)m->wanted_ctx, (unsigned)internal_free,
                     (unsigned)heap_caps_get_largest_free_block(INTERNAL_CAPS), (unsigned)psram_free,
                     (unsigned)m->psram_total, two_cores ? "true" : "false");
    else
        n = snprintf(out, cap,
                     "memory: %u bytes for the KV cache, activations, sampler and tokens in %s (context %u%s)\r\n"
                     "heap: %u bytes of internal RAM free (largest block %u), PSRAM %u of %u bytes free; "
                     "matrix products on %s\r\n",
                     (unsigned)m->arena_bytes, m->arena ? (m->in_psram ? "PSRAM" : "internal RAM") : "no RAM yet",
                     (unsigned)m->ctx, m->ctx < m->wanted_ctx ? ", cut to fit" : "", (unsigned)internal_free,
                     (unsigned)heap_caps_get_largest_free_block(INTERNAL_CAPS), (unsigned)psram_free,
                     (unsigned)m->psram_total, two_cores ? "both cores" : "core 0");
    if (n < 0) return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t memory_plan_room(const memory_plan *m, size_t internal_reserve)
{
    size_t internal = heap_caps_get_largest_free_block(INTERNAL_CAPS);
    size_t psram = heap_caps_get_largest_free_block(PSRAM_CAPS);
    if (m->arena && m->in_psram) psram += m->arena_bytes;
    else if (m->arena) internal += m->arena_bytes;
    internal = internal > internal_reserve ? internal - internal_reserve : 0;
    return internal > psram ? internal : psram;
}
