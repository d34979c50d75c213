/* lmf-run for the host: maps the blob read-only (as the board maps its flash
 * partition), gives the core one arena, and runs the shared driver.
 *   lmf-run MODEL.blob [--arena BYTES] [driver options, see --help] */
#define _POSIX_C_SOURCE 200809L
#include "lmf/app.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ARENA (64u << 20)

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            exit(errno == EPIPE ? 0 : 5); /* reader went away: nothing left to say */
        }
        data += n;
        len -= (size_t)n;
    }
}

static void write_out(void *ctx, const char *data, size_t len) { (void)ctx; write_all(1, data, len); }
static void write_err(void *ctx, const char *data, size_t len) { (void)ctx; write_all(2, data, len); }

int main(int argc, char **argv)
{
    lmf_port port = {write_out, write_err, NULL, NULL};
    size_t arena_bytes = DEFAULT_ARENA;
    struct stat st;
    void *blob, *arena;
    int fd, i, j, rc;

    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
            return lmf_app_main(argc, argv, NULL, 0, NULL, 0, &port);
        fprintf(stderr, "usage: lmf-run MODEL.blob [--arena BYTES] [options] (--help for options)\n");
        return 2;
    }
    /* --arena is the host's own option: how much RAM to pretend the board has */
    for (i = j = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--arena") && i + 1 < argc) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || v < 4096) { fprintf(stderr, "lmf-run: --arena needs a byte count of at least 4096\n"); return 2; }
            arena_bytes = (size_t)v;
        } else {
            argv[j++] = argv[i];
        }
    }
    argc = j;
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "lmf-run: cannot open %s: %s\n", argv[1], strerror(errno));
        return 3;
    }
    if (st.st_size == 0) { fprintf(stderr, "lmf-run: %s is empty: convert the model again\n", argv[1]); return 3; }
    blob = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (blob == MAP_FAILED) { fprintf(stderr, "lmf-run: cannot map %s: %s\n", argv[1], strerror(errno)); return 3; }
    if (posix_memalign(&arena, 16, arena_bytes) != 0) { fprintf(stderr, "lmf-run: cannot allocate %zu bytes\n", arena_bytes); return 4; }
    /* argv[1] (the model path) plays the program name's part for the driver */
    rc = lmf_app_main(argc - 1, argv + 1, blob, (size_t)st.st_size, arena, arena_bytes, &port);
    free(arena);
    munmap(blob, (size_t)st.st_size);
    return rc;
}
