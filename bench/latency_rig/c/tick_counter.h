/* SysTick as a 32-bit up-counter of the core clock (24-bit down-counter widened by counting
 * its wrap interrupts). Under QEMU -icount shift=0 one instruction takes 1 ns of virtual time,
 * so a tick is (1e9 / core clock Hz) instructions: 40 on MPS2 (25 MHz), 31.25 on MPS3 (32 MHz).
 * Defines SysTick_Handler; include in one translation unit only. */
#ifndef RIG_TICK_COUNTER_H_
#define RIG_TICK_COUNTER_H_

#include <stdint.h>

#define RIG_SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define RIG_SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define RIG_SYST_CVR (*(volatile uint32_t*)0xE000E018u)

static volatile uint32_t g_rig_wraps = 0;

#ifdef __cplusplus
extern "C"
#endif
void SysTick_Handler(void) { g_rig_wraps = g_rig_wraps + 1; }

static inline void tc_ticks_init(void) {
  RIG_SYST_RVR = 0x00FFFFFFu;
  RIG_SYST_CVR = 0;
  RIG_SYST_CSR = 7u; /* core clock, wrap interrupt, enable */
  while (RIG_SYST_CVR == 0u) {
    /* until the first reload: a read of 0 here would count as 0xFFFFFF ticks */
  }
}

static inline uint32_t tc_ticks_now(void) {
  /* A wrap between the two reads is caught by the loop; a wrap whose interrupt is still
   * pending would lose 2^24 ticks, but wraps come every 2^24 ticks (~6.7e8 instructions)
   * and the window is a few instructions. */
  uint32_t wraps;
  uint32_t value;
  do {
    wraps = g_rig_wraps;
    value = RIG_SYST_CVR;
  } while (wraps != g_rig_wraps);
  return wraps * 0x01000000u + (0x00FFFFFFu - value);
}

#endif /* RIG_TICK_COUNTER_H_ */
