/* Start-up code of the lmflash QEMU images (lx106, call0 ABI).
 * Section placement is in lmf-qemu.ld. */

/* QEMU's sim machine starts the CPU at the reset vector 0x50000000 whatever
 * the ELF entry says, so the first bytes there jump to _start. */
    .section .reset, "ax"
    j       _start

    .text
    .align  4
    .global _start
    .type   _start, @function
_start:
    /* Reset leaves PS.EXCM set, which would send any fault to the
     * double-exception vector without EPC1. Clear it; INTLEVEL 15 keeps
     * interrupts masked (there are none to take). */
    movi    a0, 0x0f
    wsr.ps  a0
    rsync
    movi    a1, _stack_top
    /* Zero .bss, as C requires, rather than trusting how the loader left RAM. */
    movi    a2, _bss_start
    movi    a3, _bss_end
    movi    a4, 0
1:  bgeu    a2, a3, 2f
    s32i    a4, a2, 0
    addi    a2, a2, 4
    j       1b
2:  call0   main
    call0   semihost_exit           /* a2 = main's return value */
    .size   _start, . - _start

/* Any exception (an illegal instruction, an access where there is no memory)
 * would otherwise make QEMU spin until the caller's timeout: report the cause
 * and where, then exit. Fresh stack, since the old one may be the fault. */
    .align  4
    .type   fault, @function
fault:
    movi    a1, _stack_top
    rsr.exccause a2
    rsr.epc1 a3
    rsr.excvaddr a4
    call0   semihost_fault
    .size   fault, . - fault

/* Vectors at VECBASE's reset value 0x40000000 (XEA2 offsets of the lx106
 * configuration). Each loads fault's address from the literal at offset 0,
 * since 0x40000000 is out of jump range of the code at 0x50000000. */
    .section .vectors, "ax"
    .begin  no-transform
.Lfault_addr:
    .word   fault
    .macro  vector offset
    .org    \offset
    l32r    a0, .Lfault_addr
    jx      a0
    .endm
    vector  0x10                    /* level-2 interrupt / debug */
    vector  0x20                    /* NMI */
    vector  0x30                    /* kernel exception (PS.UM = 0: ours) */
    vector  0x50                    /* user exception */
    vector  0x70                    /* double exception */
    .end    no-transform
