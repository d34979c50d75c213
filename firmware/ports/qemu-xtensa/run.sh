#!/usr/bin/env bash
# Runs the lmflash core on QEMU's emulated lx106 or ESP32-S3:
#   firmware/ports/qemu-xtensa/run.sh BLOB [DRIVER ARGS...]                      (--help for them)
#   LMF_QEMU_CPU=esp32s3 firmware/ports/qemu-xtensa/run.sh BLOB [DRIVER ARGS...]
# Build first: cmake -S firmware/ports/qemu-xtensa -B build/xtensa && cmake --build build/xtensa
#   (for the S3: cmake -S firmware/ports/qemu-esp32s3 -B build/esp32s3 && cmake --build build/esp32s3)
# LMF_QEMU_ELF picks another image (build/xtensa/lmf-qemu.elf or build/esp32s3/lmf-qemu.elf by default).
# host/qemu.ts's runOnQemu builds the same command lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../../..
cpu=${LMF_QEMU_CPU:-lx106}
case $cpu in
  lx106)   qemu=qemu-system-xtensa; elf=${LMF_QEMU_ELF:-$root/build/xtensa/lmf-qemu.elf} ;;
  esp32s3) qemu=$root/../shared/toolchains/esp32s3/qemu/qemu-system-xtensa; elf=${LMF_QEMU_ELF:-$root/build/esp32s3/lmf-qemu.elf} ;;
  *) echo "$0: LMF_QEMU_CPU must be lx106 or esp32s3, not $cpu" >&2; exit 2 ;;
esac
if [ $# -lt 1 ]; then
  echo "usage: $0 BLOB [ARGS...]" >&2
  exit 2
fi
[ -f "$elf" ] || { echo "$0: $elf is not built" >&2; exit 2; }
blob=$1
shift

# QEMU's option syntax doubles the commas inside a value.
semihosting="enable=on,arg=lmf-qemu"
loader=()
if [ "$cpu" = esp32s3 ]; then
  # that QEMU has no -device loader: the image reads the blob itself (main.c, --load-blob)
  semihosting+=",arg=--load-blob,arg=$(realpath "$blob" | sed 's/,/,,/g')"
else
  # 0x50400000: __lmf_blob_start in ../qemu-common/lmf-qemu.ld.
  loader=(-device "loader,file=${blob//,/,,},addr=0x50400000")
fi
for arg in "$@"; do semihosting+=",arg=${arg//,/,,}"; done

# -serial none: semihosting then writes to QEMU's own stdout and stderr
# (with a serial console it would send both there, mixed).
# -icount shift=0: one instruction per ns of virtual time, so CCOUNT
# (40 MHz) counts instructions / 25.
exec "$qemu" -M sim -cpu "$cpu" -nographic -monitor none -serial none \
  -icount shift=0 -semihosting-config "$semihosting" \
  -kernel "$elf" "${loader[@]}"
