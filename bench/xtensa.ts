/** Instructions per token of the core on the emulated lx106 (QEMU -icount). */
export async function xtensaInstructionsPerToken(root: string, blobPath: string): Promise<{ value: string; note: string }> {
  void root;
  void blobPath;
  return { value: 'n/a', note: 'the QEMU port is not built yet' };
}
