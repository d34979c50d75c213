#!/usr/bin/env bash
# Runs the lmflash core on QEMU's emulated lx106:
#   firmware/ports/qemu-xtensa/run.sh BLOB [DRIVER ARGS...]   (--help for them)
# Build first: cmake -S firmware/ports/qemu-xtensa -B build/xtensa && cmake --build build/xtensa
# LMF_QEMU_ELF picks another image (build/xtensa/lmf-qemu.elf by default).
# host/qemu.ts's runOnQemu builds the same command line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
elf=${LMF_QEMU_ELF:-$here/../../../build/xtensa/lmf-qemu.elf}
if [ $# -lt 1 ]; then
  echo "usage: $0 BLOB [ARGS...]" >&2
  exit 2
fi
[ -f "$elf" ] || { echo "$0: $elf is not built" >&2; exit 2; }
blob=$1
shift

# QEMU's option syntax doubles the commas inside a value.
semihosting="enable=on,arg=lmf-qemu"
for arg in "$@"; do semihosting+=",arg=${arg//,/,,}"; done

# -serial none: semihosting then writes to QEMU's own stdout and stderr
# (with a serial console it would send both there, mixed).
# -icount shift=0: one instruction per ns of virtual time, so CCOUNT
# (40 MHz) counts instructions / 25.
# 0x50400000: __lmf_blob_start in lmf-qemu.ld.
exec qemu-system-xtensa -M sim -cpu lx106 -nographic -monitor none -serial none \
  -icount shift=0 -semihosting-config "$semihosting" \
  -kernel "$elf" -device "loader,file=${blob//,/,,},addr=0x50400000"
