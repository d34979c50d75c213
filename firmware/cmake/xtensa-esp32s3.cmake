# Cross toolchain for the ESP32-S3's Xtensa LX7 core, bare metal: GCC 12 and
# binutils with Espressif's esp32s3 core configuration (PIE, FPU), from
# ../shared/toolchains/esp32s3 beside the project (its README). No C library:
# picolibc's lx106 headers for the declarations, ports/qemu-esp32s3/libc.c
# for the few functions. Used by firmware/ports/qemu-esp32s3.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR xtensa)

if(NOT LMF_ESP32S3_TOOLCHAIN)
  get_filename_component(LMF_ESP32S3_TOOLCHAIN ${CMAKE_CURRENT_LIST_DIR}/../../../shared/toolchains/esp32s3 ABSOLUTE)
endif()
set(LMF_ESP32S3_BIN ${LMF_ESP32S3_TOOLCHAIN}/xtensa-esp32s3-elf/bin)
set(CMAKE_C_COMPILER ${LMF_ESP32S3_BIN}/xtensa-esp32s3-elf-gcc)
set(CMAKE_ASM_COMPILER ${LMF_ESP32S3_BIN}/xtensa-esp32s3-elf-gcc)
set(CMAKE_OBJDUMP ${LMF_ESP32S3_BIN}/xtensa-esp32s3-elf-objdump)
# CMake's try_compile runs in a fresh project that re-reads this file.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES LMF_ESP32S3_TOOLCHAIN)

# Nothing can be linked without the port's start-up code and linker script,
# so CMake's compiler checks only compile.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
