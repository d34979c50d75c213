/* The two-core split of the matrix products, on the host with threads.
 *
 * The ESP-IDF app (firmware/esp32s3/main/two_core.c) runs half of each
 * matrix product's rows on a worker task pinned to core 1, handing the job
 * over and back with task notifications. This program does the same with
 * POSIX threads and semaphores (sem_post / sem_wait are the notification's
 * give / take): it runs a token sequence through the forward pass once on
 * one thread (state.parallel = NULL) and once split over N threads, and
 * compares every position's logits bit for bit.
 *
 *   split-test BLOB --tokens ID,ID,... [--threads N] [--min-macs M] [--logits] [--fault]
 *   split-test --pie-selftest
 *
 * Prints one summary line to stderr; --logits writes the split run's logits
 * (f32, little-endian, one vocab_size row per position) to stdout so that
 * builds with different kernels can be compared with each other and with
 * lmf-run. --fault makes the workers skip the last row of their share (a
 * negative control: the comparison must then fail). Exit status 0 when the split run matched, 1 when it did not, 2 for
 * usage errors. --pie-selftest (in builds with LMF_PIE_EMULATE) checks the
 * PIE kernel's emulation against plain loops on random data, and that a
 * misaligned pointer is read the way the chip reads it. */
#define _POSIX_C_SOURCE 200809L
#include "lmf/blob.h"
#include "lmf/kernels.h"
#include "lmf/model.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 8

/* ---- the thread pool: the FreeRTOS design with POSIX primitives ---------- */

typedef struct pool pool;

typedef struct worker {
    pool *p;
    uint32_t index;
    pthread_t thread;
    sem_t go;               /* xTaskNotifyGive(worker) / ulTaskNotifyTake in the worker */
    uint64_t rows_done;
} worker;

struct pool {
    uint32_t threads;       /* the caller plus threads - 1 workers */
    worker w[MAX_THREADS];
    sem_t done;             /* each worker's "give" back to the caller */
    lmf_rows_job job;
    void *arg;
    uint32_t rows;
    int quit, fault;
    uint64_t products, caller_rows;
};

static void *worker_main(void *arg)
{
    worker *w = (worker *)arg;
    pool *p = w->p;
    for (;;) {
        uint32_t r0, r1;
        sem_wait(&w->go);
        if (p->quit) return NULL;
        lmf_split_rows(p->rows, p->threads, w->index, &r0, &r1);
        if (p->fault && r1 > r0) r1--;
        if (r1 > r0) p->job(p->arg, r0, r1);
        w->rows_done += r1 - r0;
        sem_post(&p->done);
    }
}

/* lmf_parallel.run: the caller takes part 0, worker k part k. */
static void pool_run(void *ctx, lmf_rows_job job, void *arg, uint32_t rows)
{
    pool *p = (pool *)ctx;
    uint32_t k, r0, r1;
    p->job = job;
    p->arg = arg;
    p->rows = rows;
    for (k = 1; k < p->threads; k++) sem_post(&p->w[k].go);
    lmf_split_rows(rows, p->threads, 0, &r0, &r1);
    if (r1 > r0) job(arg, r0, r1);
    p->caller_rows += r1 - r0;
    for (k = 1; k < p->threads; k++) sem_wait(&p->done);
    p->products++;
}

static void pool_start(pool *p, uint32_t threads)
{
    uint32_t k;
    memset(p, 0, sizeof *p);
    p->threads = threads;
    sem_init(&p->done, 0, 0);
    for (k = 1; k < threads; k++) {
        p->w[k].p = p;
        p->w[k].index = k;
        sem_init(&p->w[k].go, 0, 0);
        if (pthread_create(&p->w[k].thread, NULL, worker_main, &p->w[k]) != 0) {
            fprintf(stderr, "split-test: cannot start a thread\n");
            exit(2);
        }
    }
}

static void pool_stop(pool *p)
{
    uint32_t k;
    p->quit = 1;
    for (k = 1; k < p->threads; k++) sem_post(&p->w[k].go);
    for (k = 1; k < p->threads; k++) pthread_join(p->w[k].thread, NULL);
}

/* ---- the model ---------------------------------------------------------- */

static uint8_t *read_blob(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long n;
    void *buf;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "split-test: cannot read %s\n", path);
        exit(2);
    }
    /* 16-byte aligned, like a memory-mapped partition (64 KiB aligned) */
    if (posix_memalign(&buf, 16, (size_t)n) != 0 || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "split-test: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *size = (size_t)n;
    return (uint8_t *)buf;
}

static uint32_t parse_tokens(const char *list, uint32_t *ids, uint32_t cap)
{
    uint32_t n = 0;
    while (*list && n < cap) {
        char *end;
        unsigned long v = strtoul(list, &end, 10);
        if (end == list) break;
        ids[n++] = (uint32_t)v;
        list = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* Runs ids through a fresh state; logits[pos * vocab ...]. */
static void run_sequence(const lmf_blob *blob, const uint32_t *ids, uint32_t n, const lmf_parallel *par, float *logits)
{
    lmf_state st;
    lmf_error err;
    size_t bytes = lmf_state_bytes(&blob->cfg, n);
    void *arena;
    uint32_t pos, vocab = blob->cfg.vocab_size;
    if (posix_memalign(&arena, 16, bytes) != 0 || lmf_state_init(&st, blob, arena, bytes, n, &err) != 0) {
        fprintf(stderr, "split-test: cannot set up the state\n");
        exit(2);
    }
    st.parallel = par;
    for (pos = 0; pos < n; pos++) memcpy(logits + (size_t)pos * vocab, lmf_forward(&st, ids[pos], pos), vocab * sizeof(float));
    free(arena);
}

/* ---- the PIE emulation's self-test -------------------------------------- */

#if defined(LMF_PIE_EMULATE)
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static int pie_selftest(void)
{
    static int8_t w[20 * 18 * 16] __attribute__((aligned(16)));
    static int8_t x[16 * 16 + 32] __attribute__((aligned(16)));
    int32_t d[20];
    uint32_t trial, k, j, failures = 0, checks = 0;
    for (trial = 0; trial < 2000; trial++) {
        uint32_t blocks = 1 + rnd() % 16, rows = 1 + rnd() % 20, stride = 16 * (blocks + rnd() % 3);
        int extreme = trial % 4 == 0; /* all -127 or 127: the largest sums */
        for (j = 0; j < sizeof w; j++) w[j] = extreme ? (int8_t)(rnd() & 1 ? 127 : -127) : (int8_t)(rnd() % 255 - 127);
        for (j = 0; j < sizeof x; j++) x[j] = extreme ? (int8_t)(rnd() & 1 ? 127 : -127) : (int8_t)(rnd() % 255 - 127);
        lmf_pie_dots_s8(d, w, stride, x, blocks, rows);
        for (k = 0; k < rows; k++, checks++) {
            int32_t ref = 0;
            for (j = 0; j < 16 * blocks; j++) ref += w[k * stride + j] * x[j];
            if (d[k] != ref) failures++;
        }
    }
    /* A misaligned pointer reads the enclosing aligned 16 bytes, on the chip
     * and in the emulation: x + 3 gives the same result as x. */
    for (j = 0; j < 32; j++) { w[j] = (int8_t)(j + 1); x[j] = (int8_t)(j % 5 - 2); }
    {
        int32_t aligned, shifted, honest = 0;
        lmf_pie_dots_s8(&aligned, w, 16, x, 1, 1);
        lmf_pie_dots_s8(&shifted, w, 16, x + 3, 1, 1);
        for (j = 0; j < 16; j++) honest += w[j] * x[j + 3];
        if (shifted != aligned || shifted == honest) failures++;
        checks++;
    }
    fprintf(stderr, "split-test: pie-selftest checks=%u failures=%u\n", checks, failures);
    return failures ? 1 : 0;
}
#endif

int main(int argc, char **argv)
{
    const char *path = NULL, *tokens = NULL;
    uint32_t threads = 2, min_macs = 0, n, vocab, pos, mismatched = 0, k;
    int want_logits = 0, fault = 0, i;
    size_t size;
    uint8_t *bytes;
    uint32_t *ids;
    float *serial, *split;
    lmf_blob blob;
    lmf_error err;
    pool p;
    lmf_parallel par;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--min-macs") && i + 1 < argc) min_macs = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--logits")) want_logits = 1;
        else if (!strcmp(argv[i], "--fault")) fault = 1;
        else if (!strcmp(argv[i], "--pie-selftest")) {
#if defined(LMF_PIE_EMULATE)
            return pie_selftest();
#else
            fprintf(stderr, "split-test: this build has no PIE emulation (LMF_PIE_EMULATE)\n");
            return 2;
#endif
        } else if (argv[i][0] != '-') path = argv[i];
        else path = NULL, i = argc;
    }
    if (!path || !tokens || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: split-test BLOB --tokens ID,ID,... [--threads 1..%d] [--min-macs M] [--logits] [--fault] | split-test --pie-selftest\n", MAX_THREADS);
        return 2;
    }
    bytes = read_blob(path, &size);
    if (lmf_blob_open(&blob, bytes, size, 1, &err) != 0) {
        fprintf(stderr, "split-test: %s\n", err.msg);
        return 2;
    }
    vocab = blob.cfg.vocab_size;
    ids = calloc(blob.cfg.seq_len, sizeof *ids);
    n = ids ? parse_tokens(tokens, ids, blob.cfg.seq_len) : 0;
    for (k = 0; k < n; k++)
        if (ids[k] >= vocab) n = 0;
    if (n == 0) {
        fprintf(stderr, "split-test: --tokens needs 1 to %u token ids below %u\n", blob.cfg.seq_len, vocab);
        return 2;
    }
    serial = malloc((size_t)n * vocab * sizeof(float));
    split = malloc((size_t)n * vocab * sizeof(float));
    if (!serial || !split) return 2;

    run_sequence(&blob, ids, n, NULL, serial);
    pool_start(&p, threads);
    p.fault = fault;
    par.run = pool_run;
    par.ctx = &p;
    par.min_macs = min_macs;
    run_sequence(&blob, ids, n, &par, split);
    pool_stop(&p);

    for (pos = 0; pos < n; pos++)
        if (memcmp(serial + (size_t)pos * vocab, split + (size_t)pos * vocab, vocab * sizeof(float)) != 0) mismatched++;
    fprintf(stderr, "split-test: positions=%u threads=%u products_split=%llu rows_caller=%llu", n, threads,
            (unsigned long long)p.products, (unsigned long long)p.caller_rows);
    for (k = 1; k < threads; k++) fprintf(stderr, " rows_worker%u=%llu", k, (unsigned long long)p.w[k].rows_done);
    fprintf(stderr, " mismatched_positions=%u\n", mismatched);
    if (want_logits && fwrite(split, sizeof(float), (size_t)n * vocab, stdout) != (size_t)n * vocab) return 2;
    free(split);
    free(serial);
    free(ids);
    free(bytes);
    return mismatched ? 1 : 0;
}
