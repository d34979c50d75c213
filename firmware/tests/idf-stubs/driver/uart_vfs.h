/* components/esp_driver_uart/include/driver/uart_vfs.h */
#pragma once
void uart_vfs_dev_use_driver(int uart_num);
