/* lmf-sim --flash IMAGE: the flashable virtual board (board.h).
 *
 *   lmf-sim --flash IMAGE [--flash-size 4MB|8MB|16MB] [--download] [--pace]
 *           [--name NAME] [--arena BYTES] [--ctx N] [--step-delay-us US]
 *           [--no-sync-download] [--fault-line-corrupt N | --fault-line-corrupt-all]
 *           [--fault-flash-stuck ADDR | --fault-flash-once ADDR] [--app-baud B]
 *
 * --app-baud: the rate of the app's console UART (115200, as the firmware's
 * default); only --pace makes it matter. The faults: the n-th data block the
 * loader receives (or each one) has a bit flipped on the line; a flash bit at
 * ADDR cannot be programmed to 0 (always, or only the first time).
 *
 * Reset and boot mode. A pseudo-terminal has no DTR/RTS, so the board takes
 * its modem lines from a FIFO next to it ($TMPDIR/lmf-sim-lines-<uid>/<pty path
 * with / as ->), where lmflash's esptool adapter writes each change as "dR"
 * (upper case = asserted). Behind the lines sits the auto-reset circuit of
 * USB-UART boards: EN is low while RTS is asserted and DTR is not, IO0 is low
 * while DTR is asserted and RTS is not; when EN goes high the chip boots, into
 * the ROM's download mode if IO0 is low. For hosts that cannot write the
 * FIFO (esptool.py pointed at the pty), two stand-ins, both documented as
 * differences from hardware: a SLIP SYNC packet that arrives while the app
 * runs or the boot failed is taken as "IO0 pulled low and reset", and, as
 * long as nothing ever came through the FIFO, a host that closes the port
 * while the board is in download mode is taken as a reset into the app.
 *
 * --pace paces the line to the baud rate the chip's UART runs at (115200, or
 * what CHANGE_BAUDRATE set), 10 bits per byte, both ways: a pty is as fast as
 * memory otherwise. */
#define _GNU_SOURCE
#include "board.h"

#include "esp_image.h"
#include "flash_image.h"
#include "rom_loader.h"

#include "lmf/blob.h"
#include "lmf/model_upload.h"
#include "lmf/session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#define WRITE_DEADLINE_MS 500
#define IDLE_POLL_MS 10
#define ROM_BAUD 115200u
#define MODEL_TYPE 0x40
#define MODEL_SUBTYPE 0x00
#define MODEL_LABEL "model"

enum mode { MODE_RESET, MODE_ROM, MODE_APP, MODE_HALTED };

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static struct {
    int master, lines_fd;
    char pty[128], lines_path[256];
    flash_image flash;
    enum mode mode;
    int host_here, dtr, rts, en_low, lines_used, sync_download, pace, start_download;
    uint32_t baud, app_baud;
    uint64_t tx_free_ns, rx_free_ns;
    /* ROM */
    rom_loader rom;
    rom_loader_io rom_io;
    uint32_t corrupt_packet;
    int corrupt_all;
    sync_spotter spotter;
    /* app */
    esp_ptable table;
    const esp_partition *model_part;
    lmf_session session;
    lmf_serial_io io;
    lmf_flash_io model_io;
    lmf_upload_port upload_port;
    lmf_model_upload upload;
    lmf_blob blob;
    void *arena;
    size_t arena_bytes;
    uint32_t ctx;
    unsigned step_delay_us;
    uint64_t paced_until_ns; /* --step-delay-us: when the current forward pass may end */
    const char *name;
    char no_model[LMF_ERROR_MAX + 200];
    int switch_pending, boot_pending;
    uint32_t switch_offset, switch_size;
    char lines_buf[64];
    size_t lines_len;
} B;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t now_us(void *ctx) { (void)ctx; return (uint32_t)(now_ns() / 1000u); }

/* --step-delay-us: one forward pass every step_delay_us, on absolute
 * deadlines, so that neither the host's own compute nor a sleep's overshoot
 * adds up (the tok/s a client measures is the pace asked for; a late wake-up
 * on a busy computer is made up by the next steps). After idling (more than
 * 100 ms behind), the cadence starts over. */
static void pace_step(void)
{
    uint64_t now = now_ns(), period = (uint64_t)B.step_delay_us * 1000u;
    struct timespec until;
    if (B.paced_until_ns + 100000000u < now) B.paced_until_ns = now;
    B.paced_until_ns += period;
    until.tv_sec = (time_t)(B.paced_until_ns / 1000000000u);
    until.tv_nsec = (long)(B.paced_until_ns % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {}
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

static uint64_t byte_ns(void) { return 10000000000ull / B.baud; } /* 8N1: 10 bits a byte */

/* ---- the line ------------------------------------------------------------- */

/* Writes everything within the deadline, or gives up (nobody reading); with
 * --pace no faster than the UART shifts bits out. Once a write gave up, the
 * next ones fail at once while the line stays full (a host that writes but
 * never reads must not cost 500 ms per echoed byte). */
static int line_write(const uint8_t *data, size_t len)
{
    static int stalled;
    uint64_t start = now_ns();
    if (stalled) {
        struct pollfd p = {B.master, POLLOUT, 0};
        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) return -1;
        stalled = 0;
    }
    while (len > 0) {
        size_t chunk = len;
        ssize_t n;
        if (B.pace) {
            uint64_t t = now_ns();
            if (B.tx_free_ns > t) sleep_ns(B.tx_free_ns - t);
            if (chunk > 64) chunk = 64;
        }
        n = write(B.master, data, chunk);
        if (n > 0) {
            if (B.pace) {
                uint64_t t = now_ns();
                B.tx_free_ns = (B.tx_free_ns > t ? B.tx_free_ns : t) + (uint64_t)n * byte_ns();
            }
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -1; /* EIO: nobody on the other side */
        {
            struct pollfd p = {B.master, POLLOUT, 0};
            uint64_t waited = (now_ns() - start) / 1000000u;
            if (waited >= WRITE_DEADLINE_MS) { stalled = 1; return -1; }
            poll(&p, 1, (int)(WRITE_DEADLINE_MS - waited));
        }
    }
    return 0;
}

static int session_write(void *ctx, const uint8_t *data, size_t len) { (void)ctx; return line_write(data, len); }

static void say(const char *text)
{
    fprintf(stderr, "lmf-sim: %s", text);
    if (B.host_here) line_write((const uint8_t *)text, strlen(text));
}

/* How many bytes the line has delivered by now (--pace), at most cap. */
static size_t rx_allowance(size_t cap, int *wait_ms)
{
    uint64_t t = now_ns(), window = 2000000u; /* a 2 ms burst: a UART FIFO's worth and then some */
    uint64_t n;
    *wait_ms = -1;
    if (!B.pace) return cap;
    if (B.rx_free_ns + window < t) B.rx_free_ns = t - window;
    if (B.rx_free_ns >= t) {
        *wait_ms = (int)((B.rx_free_ns - t) / 1000000u) + 1;
        return 0;
    }
    n = (t - B.rx_free_ns) / byte_ns();
    if (n == 0) { *wait_ms = 1; return 0; }
    return n < cap ? (size_t)n : cap;
}

static void rx_consumed(size_t n)
{
    if (B.pace) B.rx_free_ns += (uint64_t)n * byte_ns();
}

/* ---- ROM ------------------------------------------------------------------ */

static void rom_write(void *ctx, const uint8_t *data, size_t len) { (void)ctx; line_write(data, len); }

static void rom_set_baud(void *ctx, uint32_t baud)
{
    struct termios t;
    (void)ctx;
    B.baud = baud;
    fprintf(stderr, "lmf-sim: the chip's UART now runs at %u baud\n", baud);
    /* a real line at two different rates carries garbage; say it, at least */
    if (tcgetattr(B.master, &t) == 0 && B.pace) {
        speed_t s = cfgetospeed(&t);
        if ((baud == 921600 && s != B921600) || (baud == 115200 && s != B115200))
            fprintf(stderr, "lmf-sim: warning: the host's port is not at %u baud\n", baud);
    }
}

static void boot(int download);

static void rom_leave(void *ctx, int run_app)
{
    (void)ctx;
    /* FLASH_END: 0 reboots (with the boot strap as the lines hold it), 1 runs
     * the app; done once the loader has returned (see serve()) */
    B.boot_pending = 1 + (run_app ? 0 : (B.dtr && !B.rts));
}

static void enter_download(void)
{
    if (B.mode == MODE_ROM) rom_loader_free(&B.rom);
    B.mode = MODE_ROM;
    B.baud = ROM_BAUD;
    rom_loader_init(&B.rom, &B.rom_io, &B.flash);
    B.rom.corrupt_packet = B.corrupt_packet;
    B.rom.corrupt_all = B.corrupt_all;
    say("ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))\r\nwaiting for download\r\n");
}

/* ---- app ------------------------------------------------------------------- */

static int model_read(void *ctx, uint32_t off, void *dst, size_t len)
{
    (void)ctx;
    if (off > B.model_part->size || len > B.model_part->size - off) return -1;
    return flash_read(&B.flash, B.model_part->offset + off, dst, len);
}

static int model_erase(void *ctx, uint32_t off, uint32_t len)
{
    (void)ctx;
    if (off > B.model_part->size || len > B.model_part->size - off) return -1;
    return flash_erase(&B.flash, B.model_part->offset + off, len);
}

static int model_write(void *ctx, uint32_t off, const void *src, size_t len)
{
    (void)ctx;
    if (off > B.model_part->size || len > B.model_part->size - off) return -1;
    return flash_write(&B.flash, B.model_part->offset + off, src, len);
}

/* Opens the blob at [off, off + size) of the model partition (size 0: its header's). */
static int open_model(uint32_t off, uint32_t size, uint32_t crc, lmf_blob *blob, char *why, size_t cap)
{
    const uint8_t *head = flash_at(&B.flash, B.model_part->offset + off, LMF_BLOB_HEADER_BYTES);
    const uint8_t *p;
    lmf_error err;
    int i, erased = 1;
    if (!head) { snprintf(why, cap, "the model partition is too small for a model"); return -1; }
    for (i = 0; i < LMF_BLOB_HEADER_BYTES; i++) erased &= head[i] == 0xFF;
    if (erased) { snprintf(why, cap, "there is no model in flash yet: upload one with `lmflash upload-model MODEL.blob`"); return -1; }
    if (memcmp(head, LMF_BLOB_MAGIC, 4) != 0) {
        snprintf(why, cap, "the model partition does not start with an lmflash model (no LMFB magic): upload one with `lmflash upload-model MODEL.blob`");
        return -1;
    }
    if (size == 0) size = lmf_get_u32(head + 8);
    if (size < LMF_BLOB_HEADER_BYTES || off > B.model_part->size || size > B.model_part->size - off) {
        snprintf(why, cap, "the model header says %u bytes but the partition holds %u: upload it again", size, B.model_part->size - off);
        return -1;
    }
    p = flash_at(&B.flash, B.model_part->offset + off, size);
    if (crc && lmf_crc32(0, p, size) != crc) {
        snprintf(why, cap, "the model in flash does not match its commit record: upload it again");
        return -1;
    }
    if (lmf_blob_open(blob, p, size, 1, &err) != 0) {
        snprintf(why, cap, "the model in flash is unusable (%s): upload it again with `lmflash upload-model`", err.msg);
        return -1;
    }
    return 0;
}

static int upload_check(void *ctx, uint32_t off, uint32_t size, char *why, size_t cap)
{
    lmf_blob b;
    (void)ctx;
    if (open_model(off, size, 0, &b, why, cap) != 0) return -1;
    if (lmf_run_bytes(&b, 1) > B.arena_bytes) {
        snprintf(why, cap, "it needs %lu bytes of RAM even for a short context, the board has %lu",
                 (unsigned long)lmf_run_bytes(&b, 1), (unsigned long)B.arena_bytes);
        return -1;
    }
    return 0;
}

static void upload_activate(void *ctx, uint32_t off, uint32_t size)
{
    (void)ctx;
    B.switch_pending = 1; /* after the DONE has gone out: see serve() */
    B.switch_offset = off;
    B.switch_size = size;
}

static void start_session(const lmf_blob *blob, const char *why)
{
    lmf_error err;
    if (lmf_session_init(&B.session, &B.io, blob, why, B.arena, B.arena_bytes, B.ctx, B.name, &err) != 0) {
        snprintf(B.no_model, sizeof B.no_model, "the model does not fit this board (%s)", err.msg);
        lmf_session_init(&B.session, &B.io, NULL, B.no_model, B.arena, B.arena_bytes, B.ctx, B.name, &err);
    }
    B.session.upload = B.model_part ? &B.upload : NULL;
}

static void app_start(void)
{
    lmf_store_slot cands[2];
    uint32_t next_seq = 1, active_off = 0, active_size = 0;
    const lmf_blob *usable = NULL;
    char why[sizeof B.no_model];
    int n, i;
    B.model_part = esp_ptable_find(&B.table, MODEL_TYPE, MODEL_SUBTYPE, MODEL_LABEL);
    why[0] = '\0';
    if (!B.model_part) {
        snprintf(B.no_model, sizeof B.no_model,
                 "the partition table has no `model` partition (type 0x40, subtype 0x00): flash the firmware with its partitions-*.csv, "
                 "then upload a model with `lmflash upload-model MODEL.blob`");
    } else {
        B.model_io.size = B.model_part->size;
        n = lmf_store_candidates(&B.model_io, cands, &next_seq);
        for (i = 0; i < n && !usable; i++) {
            char reason[sizeof B.no_model];
            if (open_model(cands[i].offset, cands[i].size, cands[i].crc, &B.blob, reason, sizeof reason) == 0) {
                usable = &B.blob;
                active_off = cands[i].offset;
                active_size = B.blob.size;
                fprintf(stderr, "lmf-sim: model: %u bytes at 0x%x (model partition + 0x%x)\n", B.blob.size, B.model_part->offset + active_off, active_off);
            } else if (!why[0]) {
                snprintf(why, sizeof why, "%s", reason); /* the best candidate's problem is the one to tell */
            }
        }
        if (!usable) snprintf(B.no_model, sizeof B.no_model, "%s", why);
        lmf_model_upload_init(&B.upload, &B.model_io, &B.upload_port, active_off, active_size, next_seq);
    }
    start_session(usable, usable ? NULL : B.no_model);
    B.mode = MODE_APP;
    B.baud = B.app_baud;
    if (!usable) fprintf(stderr, "lmf-sim: app: no usable model: %s\n", B.no_model);
    if (B.host_here) lmf_session_banner(&B.session);
}

/* After a commit: the new model replaces the old one (the host stays in framed mode). */
static void switch_model(void)
{
    char why[sizeof B.no_model];
    int framed = B.session.framed;
    B.switch_pending = 0;
    if (open_model(B.switch_offset, B.switch_size, 0, &B.blob, why, sizeof why) == 0) {
        start_session(&B.blob, NULL);
        fprintf(stderr, "lmf-sim: model: now %u bytes at model partition + 0x%x\n", B.blob.size, B.switch_offset);
    } else {
        snprintf(B.no_model, sizeof B.no_model, "%s", why);
        start_session(NULL, B.no_model);
    }
    B.session.framed = framed;
}

/* ---- boot -------------------------------------------------------------------- */

static void halt(const char *why)
{
    char line[600];
    B.mode = MODE_HALTED;
    snprintf(line, sizeof line, "E (%u) boot: %s\r\nE (%u) boot: the chip stays in the bootloader: flash a good image with `lmflash flash`\r\n",
             (unsigned)(now_us(NULL) / 1000u % 100000u), why, (unsigned)(now_us(NULL) / 1000u % 100000u));
    say(line);
}

/* The chip leaves reset: download mode if IO0 is low, else the ROM loads the
 * 2nd-stage bootloader, which checks the partition table and the app. */
static void boot(int download)
{
    char why[300], line[400];
    const esp_partition *app;
    uint32_t entry = 0;
    if (B.mode == MODE_ROM) rom_loader_free(&B.rom);
    B.switch_pending = 0;
    if (download) { enter_download(); return; }
    say("ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n");
    if (esp_image_verify(&B.flash, ESP_BOOTLOADER_OFFSET, ESP_PARTITION_TABLE_OFFSET, &entry, why, sizeof why) != 0) {
        uint32_t head = 0;
        flash_read(&B.flash, 0, &head, 4);
        snprintf(line, sizeof line, "invalid header: 0x%08x (%s)\r\n", head, why);
        B.mode = MODE_HALTED; /* the ROM would print this in a loop */
        say(line);
        return;
    }
    say("I (27) boot: ESP-IDF 2nd stage bootloader (virtual)\r\n");
    if (esp_ptable_read(&B.flash, ESP_PARTITION_TABLE_OFFSET, &B.table, why, sizeof why) != 0) { halt(why); return; }
    app = esp_ptable_find(&B.table, 0x00, 0x00, NULL);           /* factory */
    if (!app) app = esp_ptable_find(&B.table, 0x00, 0x10, NULL); /* ota_0 */
    if (!app) { halt("no bootable app partition in the partition table"); return; }
    if (esp_image_verify(&B.flash, app->offset, app->size, &entry, why, sizeof why) != 0) {
        snprintf(line, sizeof line, "%s; app partition `%s` is not bootable", why, app->label);
        halt(line);
        return;
    }
    snprintf(line, sizeof line, "I (%u) boot: Loaded app from partition at offset 0x%x, entry 0x%08x\r\n",
             (unsigned)(now_us(NULL) / 1000u % 100000u), app->offset, entry);
    say(line);
    app_start();
}

/* The modem lines changed: the auto-reset circuit of a USB-UART board. */
static void lines_changed(int dtr, int rts)
{
    int en_low = rts && !dtr, io0_low = dtr && !rts;
    B.dtr = dtr;
    B.rts = rts;
    if (en_low && !B.en_low) {
        B.en_low = 1;
        if (B.mode == MODE_ROM) rom_loader_free(&B.rom);
        B.mode = MODE_RESET; /* held in reset: silent, deaf */
    } else if (!en_low && B.en_low) {
        B.en_low = 0;
        boot(io0_low);
    }
}

static void read_lines(void)
{
    char buf[64];
    ssize_t n = read(B.lines_fd, buf, sizeof buf);
    ssize_t i;
    for (i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (B.lines_len == 2) {
                B.lines_used = 1;
                lines_changed(B.lines_buf[0] == 'D', B.lines_buf[1] == 'R');
            }
            B.lines_len = 0;
        } else if (B.lines_len < sizeof B.lines_buf) {
            B.lines_buf[B.lines_len++] = buf[i];
        }
    }
}

/* ---- serving ------------------------------------------------------------------- */

/* Bytes from the host, by mode. */
static void received(const uint8_t *buf, size_t n)
{
    size_t i;
    switch (B.mode) {
    case MODE_RESET: return;
    case MODE_ROM: rom_loader_feed(&B.rom, buf, n); return;
    case MODE_APP:
    case MODE_HALTED:
        for (i = 0; i < n; i++) {
            if (!B.sync_download || !sync_spotter_push(&B.spotter, buf[i])) continue;
            /* a SYNC while the app runs: taken as a reset into download mode */
            {
                static uint8_t frame[2 + 2 * 44];
                size_t k, o = 0;
                if (B.mode == MODE_APP) lmf_session_feed(&B.session, buf, i + 1);
                fprintf(stderr, "lmf-sim: a SYNC arrived: taken as IO0 low + reset (no modem lines)\n");
                memcpy(frame + o, "\xC0", 1), o++;
                for (k = 0; k < 44; k++) frame[o++] = B.spotter.buf[k];
                frame[o++] = 0xC0;
                enter_download();
                rom_loader_feed(&B.rom, frame, o);
                rom_loader_feed(&B.rom, buf + i + 1, n - i - 1);
                return;
            }
        }
        if (B.mode == MODE_APP) lmf_session_feed(&B.session, buf, n);
        return;
    }
}

static void host_left(void)
{
    B.host_here = 0;
    if (B.mode == MODE_APP) lmf_session_disconnect(&B.session);
    tcflush(B.master, TCOFLUSH); /* drop what the old host left unread; keep what a new one types */
    if (B.mode == MODE_ROM && !B.lines_used) {
        fprintf(stderr, "lmf-sim: the host closed the port in download mode: taken as a reset (no modem lines)\n");
        boot(0);
    }
}

static void serve(void)
{
    B.host_here = 0;
    while (!stop_requested) {
        uint8_t buf[4096];
        struct pollfd p[2] = {{B.master, POLLIN, 0}, {B.lines_fd, POLLIN, 0}};
        int busy = B.mode == MODE_APP && lmf_session_busy(&B.session), wait_ms;
        size_t allow = rx_allowance(sizeof buf, &wait_ms);
        int timeout = busy ? 0 : IDLE_POLL_MS;
        if (allow == 0 && wait_ms >= 0) { p[0].events = 0; if (wait_ms < timeout || timeout == 0) timeout = busy ? 0 : wait_ms; }
        poll(p, B.lines_fd >= 0 ? 2 : 1, timeout);
        if (p[1].revents & POLLIN) read_lines();
        if (p[0].revents & POLLHUP) {
            if (B.host_here) host_left();
            else {
                /* nobody there: drain what a departed host left, then idle */
                usleep(IDLE_POLL_MS * 1000);
            }
            continue;
        }
        if (!B.host_here) {
            B.host_here = 1; /* a host opened the port: greet it as a board does at power-up */
            if (B.mode == MODE_APP) lmf_session_banner(&B.session);
        }
        if (allow > 0 && (p[0].revents & POLLIN)) {
            ssize_t n = read(B.master, buf, allow);
            if (n > 0) {
                rx_consumed((size_t)n);
                received(buf, (size_t)n);
            }
        }
        if (B.boot_pending) {
            int download = B.boot_pending == 2;
            B.boot_pending = 0;
            boot(download);
        }
        if (B.mode == MODE_APP) {
            if (B.switch_pending) switch_model();
            if (lmf_session_busy(&B.session)) {
                lmf_session_step(&B.session);
                if (B.step_delay_us) pace_step();
            }
            lmf_session_tick(&B.session);
        }
    }
}

/* ---- set-up ------------------------------------------------------------------------ */

static int open_pty(void)
{
    struct termios t;
    B.master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (B.master < 0 || grantpt(B.master) != 0 || unlockpt(B.master) != 0 || ptsname_r(B.master, B.pty, sizeof B.pty) != 0) {
        fprintf(stderr, "lmf-sim: cannot create a pseudo-terminal: %s\n", strerror(errno));
        return -1;
    }
    if (tcgetattr(B.master, &t) == 0) {
        cfmakeraw(&t);
        cfsetspeed(&t, B115200);
        tcsetattr(B.master, TCSANOW, &t);
    }
    return 0;
}

/* The folder of the FIFOs that carry DTR/RTS: $TMPDIR/lmf-sim-lines-<uid>,
 * private to this user (0700, owned by them). A folder in a shared temp dir
 * that someone else made, or opened up, could hold a symlink the host's
 * write follows: refuse it. Returns 0 with dir set, else -1 with why. */
static int private_lines_dir(char *dir, size_t cap, char *why, size_t why_cap)
{
    const char *tmp = getenv("TMPDIR");
    struct stat st;
    if (!tmp || !*tmp) tmp = "/tmp";
    snprintf(dir, cap, "%s/lmf-sim-lines-%lu", tmp, (unsigned long)getuid());
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, why_cap, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0) {
        snprintf(why, why_cap, "%s is not a private folder of this user (it must be a folder, owned by uid %lu, mode 0700): remove it", dir,
                 (unsigned long)getuid());
        return -1;
    }
    return 0;
}

/* The FIFO that carries DTR/RTS: <private lines folder>/<pty path, / as ->. */
static void open_lines(void)
{
    char dir[200], why[400];
    size_t i, o;
    B.lines_fd = -1;
    if (private_lines_dir(dir, sizeof dir, why, sizeof why) != 0) {
        fprintf(stderr, "lmf-sim: no modem lines (%s): resets only through the SYNC and close stand-ins\n", why);
        B.lines_path[0] = '\0';
        return;
    }
    o = (size_t)snprintf(B.lines_path, sizeof B.lines_path, "%s/", dir);
    for (i = B.pty[0] == '/' ? 1 : 0; B.pty[i] && o + 1 < sizeof B.lines_path; i++) B.lines_path[o++] = B.pty[i] == '/' ? '-' : B.pty[i];
    B.lines_path[o] = '\0';
    unlink(B.lines_path); /* a board that died left it behind */
    if (mkfifo(B.lines_path, 0600) != 0 || (B.lines_fd = open(B.lines_path, O_RDWR | O_NONBLOCK | O_NOFOLLOW)) < 0) {
        fprintf(stderr, "lmf-sim: no modem lines (%s: %s): resets only through the SYNC and close stand-ins\n", B.lines_path, strerror(errno));
        B.lines_path[0] = '\0';
    }
}

static uint32_t parse_size(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (!strcmp(end, "MB") || !strcmp(end, "M")) v <<= 20;
    else if (!strcmp(end, "KB") || !strcmp(end, "K")) v <<= 10;
    else if (*end) return 0;
    return (uint32_t)v;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: lmf-sim --flash IMAGE [--flash-size 4MB|8MB|16MB] [--download] [--pace] [--name NAME] [--arena BYTES] [--ctx N]\n"
            "               [--step-delay-us US] [--no-sync-download] [--fault-line-corrupt N | --fault-line-corrupt-all]\n"
            "               [--fault-flash-stuck ADDR | --fault-flash-once ADDR] [--app-baud B]\n");
    return 2;
}

int lmf_sim_flash_main(int argc, char **argv)
{
    const char *image = NULL;
    uint32_t size = 0;
    char why[300];
    int i, stuck_once = 0;
    memset(&B, 0, sizeof B);
    B.name = "virtual board";
    B.arena_bytes = 512 * 1024;
    B.sync_download = 1;
    B.lines_fd = -1;
    B.flash.stuck_addr = -1;
    B.app_baud = 115200;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--flash") && v) image = argv[++i];
        else if (!strcmp(a, "--flash-size") && v) { if (!(size = parse_size(argv[++i]))) return usage(); }
        else if (!strcmp(a, "--download")) B.start_download = 1;
        else if (!strcmp(a, "--pace")) B.pace = 1;
        else if (!strcmp(a, "--no-sync-download")) B.sync_download = 0;
        else if (!strcmp(a, "--name") && v) B.name = argv[++i];
        else if (!strcmp(a, "--arena") && v) B.arena_bytes = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--ctx") && v) B.ctx = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--step-delay-us") && v) B.step_delay_us = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--fault-line-corrupt") && v) B.corrupt_packet = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--fault-line-corrupt-all")) B.corrupt_all = 1;
        else if (!strcmp(a, "--fault-flash-stuck") && v) B.flash.stuck_addr = (int64_t)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--fault-flash-once") && v) { B.flash.stuck_addr = (int64_t)strtoul(argv[++i], NULL, 0); stuck_once = 1; }
        else if (!strcmp(a, "--app-baud") && v) B.app_baud = (uint32_t)strtoul(argv[++i], NULL, 10);
        else return usage();
    }
    if (!image) return usage();
    {
        int64_t stuck = B.flash.stuck_addr;
        if (flash_open(&B.flash, image, size, why, sizeof why) != 0) { fprintf(stderr, "lmf-sim: %s\n", why); return 3; }
        B.flash.stuck_addr = stuck;
        B.flash.stuck_bit = 0x01;
        B.flash.stuck_once = stuck_once;
    }
    if (B.arena_bytes < 4096 || posix_memalign(&B.arena, 16, B.arena_bytes) != 0) { fprintf(stderr, "lmf-sim: cannot allocate the arena\n"); return 4; }
    B.io.write = session_write;
    B.io.now_us = now_us;
    B.rom_io.write = rom_write;
    B.rom_io.set_baud = rom_set_baud;
    B.rom_io.leave = rom_leave;
    B.model_io.read = model_read;
    B.model_io.erase = model_erase;
    B.model_io.write = model_write;
    B.upload_port.check = upload_check;
    B.upload_port.activate = upload_activate;
    B.baud = ROM_BAUD;
    if (open_pty() != 0) return 4;
    open_lines();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the lmflash (or test) that started us */
#endif
    fprintf(stderr, "lmf-sim: flash %s, %u MB\n", image, B.flash.size >> 20);
    boot(B.start_download);
    if (B.lines_path[0]) printf("lmf-sim: modem lines on %s\n", B.lines_path);
    printf("lmf-sim: serving on %s\n", B.pty);
    fflush(stdout);
    serve();
    if (B.mode == MODE_ROM) rom_loader_free(&B.rom);
    if (B.lines_fd >= 0) close(B.lines_fd);
    if (B.lines_path[0]) unlink(B.lines_path);
    flash_close(&B.flash);
    free(B.arena);
    return 0;
}
