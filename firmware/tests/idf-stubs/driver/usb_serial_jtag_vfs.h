/* components/esp_driver_usb_serial_jtag/include/driver/usb_serial_jtag_vfs.h */
#pragma once
void usb_serial_jtag_vfs_use_driver(void);
