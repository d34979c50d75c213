# Cross toolchain for the ESP8266's Xtensa LX106 core, bare metal: Debian's
# gcc-xtensa-lx106 and binutils-xtensa-lx106, with picolibc-xtensa-lx106-elf
# as the C library (its headers and libc.a are on the compiler's default
# search paths, so no specs file is needed). Used by firmware/ports/qemu-xtensa.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR xtensa)

set(CMAKE_C_COMPILER xtensa-lx106-elf-gcc)
set(CMAKE_ASM_COMPILER xtensa-lx106-elf-gcc)

# Nothing can be linked without the port's start-up code and linker script,
# so CMake's compiler checks only compile.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
