/* lmflash on the ESP32-S3 (ESP-IDF v5.4): the board's side of docs/protocol.md.
 *
 * At boot: the serial line's driver; the model partition, mapped and checked
 * (magic, version, every table, CRC) - a missing or broken model leaves the
 * board in "no model" mode, which says what is wrong on the line instead of
 * crashing or rebooting; the decoder's memory in internal RAM or PSRAM
 * (memory_plan.c); the worker task on core 1 (two_core.c); the session.
 * Then the loop the virtual board (firmware/ports/posix/main.c) runs too:
 * read bytes, feed them, one forward pass per turn while generating, tick.
 *
 * Model slots and upload (protocol 1.1, lmf/model_upload.h): the model
 * partition holds two slots and a commit journal; model_partition_open maps
 * the newest committed model that passes its checks (lmf_store_candidates),
 * else the other slot, else "no model" mode with the reason. `lmflash
 * upload-model` writes the slot the running model does not use through
 * esp_partition_erase_range/write (model_partition.c's lmf_flash_io); once an
 * upload is committed and its UPLOAD_DONE has gone out, the board restarts
 * (esp_restart, components/esp_system/include/esp_system.h) and maps the new
 * model at boot, as the virtual board (firmware/ports/posix/board.c) re-opens it.
 *
 * Watchdog: the task watchdog checks that both idle tasks run (5 s by
 * default). Core 1's worker blocks between products. This loop blocks in the
 * serial read when idle, and in any case for one tick once a second
 * (vTaskDelay(1) at CONFIG_FREERTOS_HZ=1000: 0.1 % of the time while
 * generating), so that core 0's idle task runs too. */
#include <stdio.h>
#include <string.h>

#include "esp_flash.h"
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#include "lmf/blob.h"
#include "lmf/model_upload.h"
#include "lmf/session.h"
#include "memory_plan.h"
#include "model_partition.h"
#include "serial_line.h"
#include "two_core.h"

#define YIELD_EVERY_US 1000000
#define IDLE_READ_WAIT_MS 20
/* after a committed upload: time for the UPLOAD_DONE frame to leave the TX
 * buffer (UART0: 4 KiB at 115200 baud is ~360 ms) before the restart */
#define RESTART_DRAIN_MS 500

static const char *TAG = "lmflash";

/* Large: kept out of the main task's stack. */
static lmf_session session;
static lmf_blob blob;
static model_partition partition;
static memory_plan plan;
static char reason[LMF_ERROR_MAX + 256];
static char board_name[96];
static const lmf_parallel *two_cores;
static const lmf_serial_io io = {serial_line_write, serial_line_now_us, NULL};
static lmf_model_upload upload; /* ~2.5 KB of buffers: static too */
static int restart_pending;

/* /info and INFO: the memory plan and the heap (the session's port_info hook). */
static size_t port_info(void *ctx, char *out, size_t cap, int json)
{
    (void)ctx;
    return memory_plan_describe(&plan, two_cores != NULL, out, cap, json);
}

static void describe_board(void)
{
    uint32_t flash_bytes = 0;
    size_t psram = heap_caps_get_total_size(MALLOC_CAP_SPIRAM);
    esp_flash_get_size(esp_flash_default_chip, &flash_bytes);
    if (psram)
        snprintf(board_name, sizeof board_name, "%s, %u MB flash, %u MB PSRAM", CONFIG_LMF_BOARD_NAME,
                 (unsigned)(flash_bytes >> 20), (unsigned)((psram + (1u << 19)) >> 20));
    else
        snprintf(board_name, sizeof board_name, "%s, %u MB flash, no PSRAM", CONFIG_LMF_BOARD_NAME,
                 (unsigned)(flash_bytes >> 20));
}

/* ---- upload (lmf_upload_port) ---------------------------------------------- */

/* The new blob is in flash and its CRC-32 is right: can this board run it? */
static int upload_check(void *ctx, uint32_t offset, uint32_t size, char *why, size_t cap)
{
    size_t need = 0, room;
    (void)ctx;
    if (model_partition_check(&partition, offset, size, &need, why, cap) != 0) return -1;
    room = memory_plan_room(&plan, (size_t)CONFIG_LMF_INTERNAL_RESERVE_KB * 1024);
    if (need > room) {
        snprintf(why, cap, "it needs %u bytes of RAM even for a short context, the board has %u", (unsigned)need, (unsigned)room);
        return -1;
    }
    return 0;
}

/* Committed: restart once the UPLOAD_DONE is out (see app_main's loop). */
static void upload_activate(void *ctx, uint32_t offset, uint32_t size)
{
    (void)ctx;
    (void)offset;
    (void)size;
    restart_pending = 1;
}

static const lmf_upload_port upload_port = {upload_check, upload_activate, NULL};

static void say(const char *text) { serial_line_write(NULL, (const uint8_t *)text, strlen(text)); }

/* The model, its memory and the session; whatever fails leaves the session
 * in "no model" mode with the reason. */
static void start_session(void)
{
    const lmf_blob *usable = NULL;
    lmf_error err;
    if (model_partition_open(&blob, &partition, reason, sizeof reason) == 0) {
        if (memory_plan_place(&plan, &blob, CONFIG_LMF_CONTEXT, (size_t)CONFIG_LMF_INTERNAL_RESERVE_KB * 1024, reason,
                              sizeof reason) == 0)
            usable = &blob;
    }
    if (lmf_session_init(&session, &io, usable, usable ? NULL : reason, plan.arena, plan.arena_bytes, plan.ctx, board_name, &err) != 0) {
        snprintf(reason, sizeof reason, "the model does not fit the RAM set aside for it (%s)", err.msg);
        lmf_session_init(&session, &io, NULL, reason, NULL, 0, 0, board_name, &err);
    }
    session.state.tf.parallel = two_cores; /* after init, which clears the state; transformers only */
    session.port_info = port_info;
    session.port_info_ctx = NULL;
    if (partition.part) { /* upload needs the partition, not a usable model */
        lmf_model_upload_init(&upload, &partition.io, &upload_port, partition.blob_bytes ? partition.slot_offset : 0,
                              partition.blob_bytes, partition.next_seq);
        session.upload = &upload; /* after lmf_session_init, which clears the session */
    }
    if (session.blob)
        ESP_LOGI(TAG, "model: %u bytes at flash 0x%x (model partition + 0x%x), context %u, arena %u bytes in %s",
                 (unsigned)blob.size, (unsigned)(partition.address + partition.slot_offset), (unsigned)partition.slot_offset,
                 (unsigned)session.state.ctx, (unsigned)plan.arena_bytes,
                 plan.in_psram ? "PSRAM" : "internal RAM");
    else
        ESP_LOGW(TAG, "no model: %s", session.no_model_reason);
}

void app_main(void)
{
    uint8_t buf[256];
    int64_t last_yield;
    bool host_present;
    int busy, n;
    esp_err_t e = serial_line_init();
    if (e != ESP_OK) ESP_LOGE(TAG, "the %s driver did not start (%s)", serial_line_name(), esp_err_to_name(e));
    describe_board();
#if CONFIG_LMF_TWO_CORES
    two_cores = two_core_start(CONFIG_LMF_PARALLEL_MIN_MACS);
    if (!two_cores) ESP_LOGW(TAG, "the worker task on core 1 did not start: everything runs on core 0");
#endif
    start_session();
    if (session.blob) {
        char text[320];
        memory_plan_describe(&plan, two_cores != NULL, text, sizeof text, 0);
        say(text);
    }
    /* from here on, log lines would land between protocol frames */
    esp_log_level_set("*", ESP_LOG_ERROR);
    lmf_session_banner(&session);

    host_present = serial_line_host_present();
    last_yield = esp_timer_get_time();
    for (;;) {
        bool present;
        busy = lmf_session_busy(&session);
        n = serial_line_read(buf, sizeof buf, busy ? 0 : pdMS_TO_TICKS(IDLE_READ_WAIT_MS));
        present = serial_line_host_present();
        if (host_present && !present) lmf_session_disconnect(&session); /* USB unplugged: stop, forget */
        if (!host_present && present) lmf_session_banner(&session);     /* plugged in again: greet it */
        host_present = present;
        if (n > 0) lmf_session_feed(&session, buf, (size_t)n);
        if (restart_pending) { /* a committed upload: its UPLOAD_DONE went out in the feed */
            vTaskDelay(pdMS_TO_TICKS(RESTART_DRAIN_MS));
            esp_restart(); /* the boot maps the new model (model_partition_open) */
        }
        if (lmf_session_busy(&session)) lmf_session_step(&session);
        lmf_session_tick(&session);
        if (esp_timer_get_time() - last_yield >= YIELD_EVERY_US) {
            vTaskDelay(1); /* core 0's idle task runs: the task watchdog stays fed */
            last_yield = esp_timer_get_time();
        }
    }
}
