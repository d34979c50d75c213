/* Start-up code of the lmflash QEMU images for the ESP32-S3's LX7 core
 * (windowed ABI, as ESP-IDF compiles). Section placement is in
 * ../qemu-common/lmf-qemu.ld, shared with the lx106 port.
 *
 * Beyond the lx106's crt0.S: the windowed ABI needs the register-window
 * overflow and underflow handlers (every call deeper than the 64 physical
 * registers spills a caller's frame to its stack), and the FPU and PIE are
 * coprocessors that CPENABLE must switch on before their first instruction. */

/* QEMU's sim machine starts the CPU at the reset vector 0x50000000 whatever
 * the ELF entry says, so the first bytes there jump to _start. */
    .section .reset, "ax"
    j       _start

    .text
    .literal_position
    .align  4
    .global _start
    .type   _start, @function
_start:
    /* One live window frame, at WINDOWBASE 0. */
    movi    a2, 1
    wsr.windowstart a2
    movi    a2, 0
    wsr.windowbase a2
    rsync
    /* PS: WOE (bit 18) on, so that calls spill through the window vectors;
     * EXCM off, so that a fault reaches the kernel vector with EPC1 set;
     * UM off (faults are ours); INTLEVEL 15: no interrupts. */
    movi    a2, 0x4000f
    wsr.ps  a2
    rsync
    /* Every coprocessor on: CP0 is the FPU, CP3 the PIE ("cop_ai"). */
    movi    a2, 0xff
    wsr.cpenable a2
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
    /* a0 = 0 ends any backtrace here. call4: the callee's a2 is our a6, so
     * main's return value is already semihost_exit's argument. */
2:  movi    a0, 0
    call4   main
    call4   semihost_exit
    .size   _start, . - _start

/* Any other exception (an illegal instruction, an access where there is no
 * memory, a disabled coprocessor) would otherwise make QEMU spin until the
 * caller's timeout: report the cause and where, then exit. The window state
 * is whatever the fault left, so it is reset to one frame on a fresh stack
 * before the windowed C call. */
    .align  4
    .type   fault, @function
fault:
    rsr.exccause a6
    rsr.epc1 a7
    rsr.excvaddr a8
    rsr.windowbase a2
    movi    a3, 1
    ssl     a2
    sll     a3, a3                  /* 1 << WINDOWBASE: only this frame live */
    wsr.windowstart a3
    movi    a2, 0x4000f             /* WOE, EXCM off, INTLEVEL 15 */
    wsr.ps  a2
    rsync
    movi    a1, _stack_top
    movi    a0, 0
    call4   semihost_fault          /* a6, a7, a8 become its a2, a3, a4 */
    .size   fault, . - fault

/* Vectors at VECBASE's reset value 0x40000000 (XEA2 offsets of the esp32s3
 * configuration, core-isa.h). The window handlers are the architectural
 * ones: a frame's a0-a3 go to the 16 bytes below its callee's stack pointer,
 * a call8/call12 frame's further registers to the extra save area below its
 * own caller's stack pointer (Xtensa ISA, "Windowed Register Option"). */
    .section .vectors, "ax"
    .begin  no-transform

    .org    0x00                    /* overflow, call4 frame */
    s32e    a0, a5, -16
    s32e    a1, a5, -12
    s32e    a2, a5, -8
    s32e    a3, a5, -4
    rfwo

    .org    0x40                    /* underflow, call4 frame */
    l32e    a0, a5, -16
    l32e    a1, a5, -12
    l32e    a2, a5, -8
    l32e    a3, a5, -4
    rfwu

    .org    0x80                    /* overflow, call8 frame */
    s32e    a0, a9, -16
    l32e    a0, a1, -12             /* the caller's caller's stack pointer */
    s32e    a1, a9, -12
    s32e    a2, a9, -8
    s32e    a3, a9, -4
    s32e    a4, a0, -32
    s32e    a5, a0, -28
    s32e    a6, a0, -24
    s32e    a7, a0, -20
    rfwo

    .org    0xC0                    /* underflow, call8 frame */
    l32e    a1, a9, -12
    l32e    a0, a9, -16
    l32e    a7, a1, -12
    l32e    a2, a9, -8
    l32e    a4, a7, -32
    l32e    a3, a9, -4
    l32e    a5, a7, -28
    l32e    a6, a7, -24
    l32e    a7, a7, -20
    rfwu

    .org    0x100                   /* overflow, call12 frame */
    s32e    a0, a13, -16
    l32e    a0, a1, -12
    s32e    a1, a13, -12
    s32e    a2, a13, -8
    s32e    a3, a13, -4
    s32e    a4, a0, -48
    s32e    a5, a0, -44
    s32e    a6, a0, -40
    s32e    a7, a0, -36
    s32e    a8, a0, -32
    s32e    a9, a0, -28
    s32e    a10, a0, -24
    s32e    a11, a0, -20
    rfwo

    .org    0x140                   /* underflow, call12 frame */
    l32e    a1, a13, -12
    l32e    a0, a13, -16
    l32e    a11, a1, -12
    l32e    a2, a13, -8
    l32e    a4, a11, -48
    l32e    a8, a11, -32
    l32e    a3, a13, -4
    l32e    a5, a11, -44
    l32e    a6, a11, -40
    l32e    a7, a11, -36
    l32e    a9, a11, -28
    l32e    a10, a11, -24
    l32e    a11, a11, -20
    rfwu

    /* Everything else: fault. Its address is a literal just below the first
     * interrupt vector (0x180), since 0x40000000 is out of jump range of the
     * code at 0x50000000 and l32r reaches only backwards. */
    .org    0x17C
.Lfault_addr:
    .word   fault
    .macro  vector offset
    .org    \offset
    l32r    a0, .Lfault_addr
    jx      a0
    .endm
    vector  0x180                   /* level-2 interrupt */
    vector  0x1C0                   /* level 3 */
    vector  0x200                   /* level 4 */
    vector  0x240                   /* level 5 */
    vector  0x280                   /* level 6 / debug */
    vector  0x2C0                   /* NMI */
    vector  0x300                   /* kernel exception (PS.UM = 0: ours) */
    vector  0x340                   /* user exception */
    vector  0x3C0                   /* double exception */
    .end    no-transform
