/* Validates instruction counting under qemu-system-arm -icount shift=0 on bare metal: a loop
 * of a known instruction count (two per iteration: SUBS, BNE) timed with SysTick, the same
 * counter the rig's profiler reads. Prints "spin <iterations> <ticks>" lines and exits. */
#include <stdint.h>

#include "semihost.h"
#include "tick_counter.h"

/* 2 * n + a constant number of instructions (n >= 1). */
__attribute__((noinline)) static void spin(uint32_t n) {
  __asm volatile(".syntax unified\n1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
}

static void put_line(const char* label, uint32_t a, uint32_t b) {
  char text[64];
  char* p = text;
  while (*label) *p++ = *label++;
  uint32_t values[2] = {a, b};
  for (int v = 0; v < 2; ++v) {
    char digits[11];
    int k = 0;
    uint32_t x = values[v];
    do {
      digits[k++] = (char)('0' + x % 10u);
      x /= 10u;
    } while (x);
    *p++ = ' ';
    while (k) *p++ = digits[--k];
  }
  *p++ = '\n';
  *p = 0;
  semihost_write(text);
}

int main(void) {
  static const uint32_t sizes[] = {1, 11, 101, 1001, 10001, 100001, 1000001, 10000001};
  tc_ticks_init();
  for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
    const uint32_t start = tc_ticks_now();
    spin(sizes[i]);
    put_line("spin", sizes[i], tc_ticks_now() - start);
  }
  for (unsigned i = 0; i < 8; ++i) { /* the same short loop again: phase changes the tick count */
    const uint32_t start = tc_ticks_now();
    spin(37);
    put_line("spin", 37, tc_ticks_now() - start);
  }
  return 0;
}
