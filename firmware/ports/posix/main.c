/* lmf-sim, the virtual board: the real core and serial session behind a
 * pseudo-terminal. A host opens the printed /dev/pts/N like a board's port.
 *   lmf-sim MODEL.blob [--arena BYTES] [--ctx N] [--name NAME] [--step-delay-us US]
 *   lmf-sim --no-model
 *   lmf-sim --flash IMAGE ...   the flashable virtual board (board.c)
 * --step-delay-us slows every forward pass down to a board's pace (the host
 * is ~100x faster than an ESP32-S3), e.g. to try Ctrl-C by hand.
 * Output the host does not take within 500 ms is dropped and the reply
 * stopped, as on the board (docs/protocol.md, flow control). */
#define _GNU_SOURCE
#include "lmf/blob.h"
#include "lmf/session.h"
#include "board.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define WRITE_DEADLINE_MS 500
#define IDLE_POLL_MS 50

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static int master_fd = -1;
static unsigned step_delay_us;

static uint32_t now_us(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

/* Writes everything within the deadline, or gives up (nobody reading). Once
 * a write gave up, the next ones fail at once while the line stays full: a
 * host that writes but never reads must not cost 500 ms per echoed byte. */
static int write_line(void *ctx, const uint8_t *data, size_t len)
{
    static int stalled;
    uint32_t start = now_us(ctx);
    if (stalled) {
        struct pollfd p = {master_fd, POLLOUT, 0};
        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) return -1;
        stalled = 0;
    }
    while (len > 0) {
        ssize_t n = write(master_fd, data, len);
        if (n > 0) { data += n; len -= (size_t)n; continue; }
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -1; /* EIO: nobody on the other side */
        {
            struct pollfd p = {master_fd, POLLOUT, 0};
            uint32_t waited = (now_us(ctx) - start) / 1000u;
            if (waited >= WRITE_DEADLINE_MS) { stalled = 1; return -1; }
            poll(&p, 1, (int)(WRITE_DEADLINE_MS - waited));
        }
    }
    return 0;
}

static const void *map_blob(const char *path, size_t *size)
{
    struct stat st;
    void *p;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "lmf-sim: cannot read %s: %s\n", path, fd < 0 ? strerror(errno) : "empty file");
        exit(3);
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) { fprintf(stderr, "lmf-sim: cannot map %s: %s\n", path, strerror(errno)); exit(3); }
    *size = (size_t)st.st_size;
    return p;
}

static int open_pty(char *name, size_t cap)
{
    struct termios t;
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || grantpt(fd) != 0 || unlockpt(fd) != 0 || ptsname_r(fd, name, cap) != 0) {
        fprintf(stderr, "lmf-sim: cannot create a pseudo-terminal: %s\n", strerror(errno));
        exit(4);
    }
    /* raw, like a UART: no echo, no line editing, no CR/LF translation */
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        cfsetspeed(&t, B115200);
        tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

/* Serves until SIGINT/SIGTERM. Linux reports POLLHUP on the master while no
 * process has the slave open (once one has): that is how the virtual board
 * sees a host come and go. */
static void serve(lmf_session *session)
{
    int host_here = 1;
    lmf_session_banner(session); /* the board's boot banner */
    while (!stop_requested) {
        uint8_t buf[512];
        struct pollfd p = {master_fd, POLLIN, 0};
        int ready = poll(&p, 1, lmf_session_busy(session) ? 0 : IDLE_POLL_MS);
        if (ready > 0 && (p.revents & POLLHUP)) {
            if (host_here) { /* the host left: stop, forget, go idle */
                host_here = 0;
                lmf_session_disconnect(session);
                tcflush(master_fd, TCOFLUSH); /* drop what the old host left unread; keep what a new one types */
            }
            usleep(IDLE_POLL_MS * 1000);
            continue;
        }
        if (!host_here) { /* a host opened the port again: greet it as a board does at power-up */
            host_here = 1;
            lmf_session_banner(session);
        }
        if (ready > 0 && (p.revents & POLLIN)) {
            ssize_t n = read(master_fd, buf, sizeof buf);
            if (n > 0) lmf_session_feed(session, buf, (size_t)n);
        }
        if (lmf_session_busy(session)) {
            lmf_session_step(session);
            if (step_delay_us) usleep(step_delay_us);
        }
        lmf_session_tick(session);
    }
}

int main(int argc, char **argv)
{
    static lmf_session session;
    static lmf_serial_io io = {write_line, now_us, NULL};
    lmf_blob blob;
    lmf_error err;
    const char *model = NULL, *name = "virtual board", *why = NULL;
    const lmf_blob *usable = NULL;
    size_t arena_bytes = 512 * 1024, blob_size = 0;
    uint32_t ctx = 0;
    char pty[128], reason[LMF_ERROR_MAX + 64];
    void *arena;
    int i;

    for (i = 1; i < argc; i++) /* the flashable virtual board: board.c */
        if (!strcmp(argv[i], "--flash")) return lmf_sim_flash_main(argc, argv);
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--arena") && i + 1 < argc) arena_bytes = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--step-delay-us") && i + 1 < argc) step_delay_us = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--no-model")) model = NULL;
        else if (argv[i][0] != '-') model = argv[i];
        else { fprintf(stderr, "usage: lmf-sim MODEL.blob [--arena BYTES] [--ctx N] [--name NAME] [--step-delay-us US] | lmf-sim --no-model\n"); return 2; }
    }
    if (model) {
        const void *bytes = map_blob(model, &blob_size);
        /* like the board: a bad model is reported on the line, not a crash */
        if (lmf_blob_open(&blob, bytes, blob_size, 1, &err) == 0) usable = &blob;
        else { snprintf(reason, sizeof reason, "the model is unusable (%s)", err.msg); why = reason; }
    }
    if (arena_bytes < 4096 || posix_memalign(&arena, 16, arena_bytes) != 0) { fprintf(stderr, "lmf-sim: cannot allocate the arena\n"); return 4; }
    if (lmf_session_init(&session, &io, usable, why, arena, arena_bytes, ctx, name, &err) != 0) {
        fprintf(stderr, "lmf-sim: %s\n", err.msg);
        return 4;
    }
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the lmflash (or test) that started us */
#endif
    master_fd = open_pty(pty, sizeof pty);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("lmf-sim: serving on %s\n", pty);
    fflush(stdout);
    serve(&session);
    return 0;
}
