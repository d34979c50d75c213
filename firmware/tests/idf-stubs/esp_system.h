/* components/esp_system/include/esp_system.h */
#pragma once
#include <stdint.h>
#include "esp_err.h"
void esp_restart(void) __attribute__((__noreturn__));
