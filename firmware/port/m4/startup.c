/* Cortex-M4 startup for QEMU's mps2-an386 board: a vector table (initial stack pointer, reset
 * handler, and a handler that reports any fault through semihosting), .data copied from its
 * load address, then newlib's rdimon _start (which clears .bss and calls main; main's return
 * value becomes QEMU's exit status). */
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start__, __data_end__;
extern void _start(void);
void reset_handler(void);
void fault_handler(void);

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top,
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
};

void reset_handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start__;
    /* CPACR: full access to CP10/CP11 in case the compiler uses the FPU */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    while (dst < &__data_end__)
        *dst++ = *src++;
    _start();
    for (;;)
        ;
}

/* A fault ends the run with a failing status: SYS_EXIT with ADP_Stopped_RunTimeErrorUnknown. */
void fault_handler(void)
{
    static const uint32_t block[2] = {0x20023u, 1};
    __asm__ volatile("mov r0, #0x18\n mov r1, %0\n bkpt 0xab" : : "r"(block) : "r0", "r1");
    for (;;)
        ;
}
