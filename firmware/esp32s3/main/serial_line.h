/* The lmflash serial line: USB-Serial-JTAG or UART0, as chosen in
 * menuconfig (lmflash > Serial line). It supplies the session's
 * lmf_serial_io (write with the 500 ms deadline of docs/protocol.md, a
 * microsecond clock) and reads what the host sends. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "freertos/FreeRTOS.h"

/* Installs the driver (and, when ESP-IDF's console shares the line, points
 * stdio at the driver too so that the two never write over each other). */
esp_err_t serial_line_init(void);

/* Up to cap received bytes, waiting at most `wait` ticks for the first. */
int serial_line_read(uint8_t *buf, size_t cap, TickType_t wait);

/* lmf_serial_io.write: 0 when the line took every byte within 500 ms, else -1. */
int serial_line_write(void *ctx, const uint8_t *data, size_t len);

/* lmf_serial_io.now_us */
uint32_t serial_line_now_us(void *ctx);

/* USB-Serial-JTAG: a USB host is there (it sends start-of-frame packets).
 * UART0 cannot tell: always true. */
bool serial_line_host_present(void);

/* "USB-Serial-JTAG" or "UART0" */
const char *serial_line_name(void);
