/* The flashable virtual board (`lmf-sim --flash IMAGE`): an ESP32-S3 whose
 * flash is a file, with the boot ROM's download mode and flasher stub
 * (rom_loader.c), the boot checks of the ROM and the 2nd-stage bootloader
 * (esp_image.c), and the app: the serial session with the model found through
 * the flashed partition table, and model upload (protocol 1.1). See
 * docs/flashing.md, "The virtual board". */
#ifndef LMF_SIM_BOARD_H
#define LMF_SIM_BOARD_H

int lmf_sim_flash_main(int argc, char **argv);

#endif
