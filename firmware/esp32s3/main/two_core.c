/* The two-core split of the matrix products (two_core.h).
 *
 * Per product: the caller (core 0) stores the job, gives the worker a task
 * notification, computes rows [0, mid), then takes a notification back, which
 * the worker gives when rows [mid, rows) are done. Both halves come from
 * lmf_split_rows, the same function firmware/tests/split_test.c uses with
 * POSIX threads on the host, where the result is checked bit for bit against
 * one core.
 *
 * The worker never spins: between products it is blocked in ulTaskNotifyTake,
 * so core 1's idle task runs and the task watchdog, which watches both idle
 * tasks (CONFIG_ESP_TASK_WDT_CHECK_IDLE_TASK_CPU1, default y), is fed. The
 * caller side keeps core 0's idle task alive in main.c's loop.
 *
 * Task notifications (FreeRTOS task.h: xTaskNotifyGive, ulTaskNotifyTake)
 * enter a critical section on both sides, which orders the worker's stores to
 * the output before the caller reads it. The main task uses notification
 * index 0 for nothing else. */
#include "two_core.h"

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

/* lmf_matvec_q8 needs well under 1 KiB (a 256-byte row buffer and a few
 * words; lmf_matvec_q4 a 256-byte group buffer more); the rest is margin
 * for the FPU and PIE coprocessor save areas.
 * xTaskCreatePinnedToCore takes the stack size in bytes in ESP-IDF. */
#define WORKER_STACK_BYTES 4096
#define WORKER_PRIORITY 5
#define WORKER_CORE 1

typedef struct two_core {
    TaskHandle_t worker, caller;
    lmf_rows_job job;
    void *arg;
    uint32_t r0, r1; /* the worker's rows */
} two_core;

static two_core tc;
static lmf_parallel parallel;

static void worker_main(void *p)
{
    two_core *t = (two_core *)p;
    for (;;) {
        ulTaskNotifyTake(pdTRUE, portMAX_DELAY);
        if (t->r1 > t->r0) t->job(t->arg, t->r0, t->r1);
        xTaskNotifyGive(t->caller);
    }
}

static void run_split(void *ctx, lmf_rows_job job, void *arg, uint32_t rows)
{
    two_core *t = (two_core *)ctx;
    uint32_t r0, r1;
    t->job = job;
    t->arg = arg;
    lmf_split_rows(rows, 2, 1, &t->r0, &t->r1);
    t->caller = xTaskGetCurrentTaskHandle();
    xTaskNotifyGive(t->worker);
    lmf_split_rows(rows, 2, 0, &r0, &r1);
    if (r1 > r0) job(arg, r0, r1);
    ulTaskNotifyTake(pdTRUE, portMAX_DELAY);
}

const lmf_parallel *two_core_start(uint32_t min_macs)
{
    if (xTaskCreatePinnedToCore(worker_main, "lmf_worker", WORKER_STACK_BYTES, &tc, WORKER_PRIORITY, &tc.worker, WORKER_CORE) != pdPASS)
        return NULL;
    parallel.run = run_split;
    parallel.ctx = &tc;
    parallel.min_macs = min_macs;
    return &parallel;
}
