/* The serial line (serial_line.h). ESP-IDF v5.4 APIs:
 *   driver/usb_serial_jtag.h, driver/usb_serial_jtag_vfs.h (esp_driver_usb_serial_jtag)
 *   driver/uart.h, driver/uart_vfs.h (esp_driver_uart), esp_timer.h */
#include "serial_line.h"

#include "esp_timer.h"
#include "sdkconfig.h"

#if CONFIG_LMF_SERIAL_UART0
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#else
#include "driver/usb_serial_jtag.h"
#include "driver/usb_serial_jtag_vfs.h"
#endif

#define WRITE_DEADLINE_US 500000 /* docs/protocol.md, flow control */
#define RX_BUFFER_BYTES 2048     /* a 1 KiB frame and then some */
#define TX_BUFFER_BYTES 4096

#if CONFIG_LMF_SERIAL_UART0
#define UART0_TX_GPIO 43         /* soc/esp32s3/include/soc/uart_pins.h: U0TXD, U0RXD */
#define UART0_RX_GPIO 44
#endif

esp_err_t serial_line_init(void)
{
    esp_err_t err;
#if CONFIG_LMF_SERIAL_UART0
    const uart_config_t cfg = {
        .baud_rate = CONFIG_LMF_UART_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    err = uart_driver_install(UART_NUM_0, RX_BUFFER_BYTES, TX_BUFFER_BYTES, 0, NULL, 0);
    if (err == ESP_OK) err = uart_param_config(UART_NUM_0, &cfg);
    if (err == ESP_OK) err = uart_set_pin(UART_NUM_0, UART0_TX_GPIO, UART0_RX_GPIO, UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE);
#if CONFIG_ESP_CONSOLE_UART && CONFIG_ESP_CONSOLE_UART_NUM == 0
    if (err == ESP_OK) uart_vfs_dev_use_driver(UART_NUM_0);
#endif
#else
    usb_serial_jtag_driver_config_t cfg = {
        .tx_buffer_size = TX_BUFFER_BYTES,
        .rx_buffer_size = RX_BUFFER_BYTES,
    };
    err = usb_serial_jtag_driver_install(&cfg);
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
    if (err == ESP_OK) usb_serial_jtag_vfs_use_driver();
#endif
#endif
    return err;
}

int serial_line_read(uint8_t *buf, size_t cap, TickType_t wait)
{
    int n;
#if CONFIG_LMF_SERIAL_UART0
    n = uart_read_bytes(UART_NUM_0, buf, (uint32_t)cap, wait);
#else
    n = usb_serial_jtag_read_bytes(buf, (uint32_t)cap, wait);
#endif
    return n < 0 ? 0 : n;
}

int serial_line_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
#if CONFIG_LMF_SERIAL_UART0
    /* A UART always drains at its baud rate (no flow control), so the copy
     * into the driver's ring buffer always finishes. */
    return uart_write_bytes(UART_NUM_0, data, len) == (int)len ? 0 : -1;
#else
    /* USB: the host may stop reading; then the ring buffer stays full and
     * the write gives up after 500 ms, and the session stops generating. */
    int64_t start = esp_timer_get_time();
    while (len > 0) {
        int64_t left_us = WRITE_DEADLINE_US - (esp_timer_get_time() - start);
        int n;
        if (left_us <= 0) return -1;
        n = usb_serial_jtag_write_bytes(data, len, pdMS_TO_TICKS((uint32_t)(left_us / 1000)) + 1);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
    return 0;
#endif
}

uint32_t serial_line_now_us(void *ctx)
{
    (void)ctx;
    return (uint32_t)esp_timer_get_time();
}

bool serial_line_host_present(void)
{
#if CONFIG_LMF_SERIAL_UART0
    return true;
#else
    return usb_serial_jtag_is_connected();
#endif
}

const char *serial_line_name(void)
{
#if CONFIG_LMF_SERIAL_UART0
    return "UART0";
#else
    return "USB-Serial-JTAG";
#endif
}
