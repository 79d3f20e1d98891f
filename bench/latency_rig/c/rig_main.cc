// Latency rig firmware: counts the instructions of each operator's Invoke and of whole Invokes
// under qemu-system-arm -icount shift=0 (see tick_counter.h). Replaces the self-test main.cc of
// a tinycompress cortex-m project rendered with name "model"; the model, golden, startup and
// Makefile files are the project's. The model-specific symbols (rig_*) are appended to
// src/model_golden.c by the rig, so this file (and its object, compiled once per core and
// kernel library) is the same for every model. Prints, through semihosting:
//   overhead <pairs> <ticks>      empty BeginEvent/EndEvent pairs (the profiler's own cost)
//   op <index> <name> <ticks>     ticks of operator <index>, summed over rig_repeats Invokes
//   invoke <ticks>                ticks of rig_repeats whole Invokes (profiler disabled)
//   repeats <n>, check PASS|FAIL  outputs bit-exact with the host TFLM run
#include <stdint.h>
#include <string.h>

#include "semihost.h"
#include "tick_counter.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"

extern "C" {
extern const unsigned char g_model_data[];
extern const void* const rig_inputs[];
extern const unsigned rig_input_bytes[];
extern const int rig_n_inputs;
extern const void* const rig_outputs[];
extern const unsigned rig_output_bytes[];
extern const int rig_n_outputs;
extern const int rig_repeats;
extern uint8_t rig_arena[];
extern const unsigned rig_arena_size;
}

#define RIG_MAX_OPS 256

namespace {

// Every operator the rig measures (latency_rig.tflm_lib.KERNEL_FILES). Registering more
// operators than a model uses changes AllocateTensors, not an operator's Invoke.
using Resolver = tflite::MicroMutableOpResolver<18>;

TfLiteStatus register_ops(Resolver& r) {
  const TfLiteStatus s[] = {
      r.AddAdd(), r.AddAveragePool2D(), r.AddConv2D(), r.AddDepthwiseConv2D(),
      r.AddDequantize(), r.AddFullyConnected(), r.AddLogistic(), r.AddMaxPool2D(),
      r.AddMean(), r.AddMul(), r.AddPad(), r.AddQuantize(), r.AddRelu(), r.AddRelu6(),
      r.AddReshape(), r.AddSoftmax(), r.AddTanh()};
  for (TfLiteStatus x : s) {
    if (x != kTfLiteOk) return x;
  }
  return kTfLiteOk;
}

// Sums the ticks of each operator's Invoke; events are numbered in execution order.
class TickProfiler : public tflite::MicroProfilerInterface {
 public:
  bool enabled = true;
  uint32_t ticks[RIG_MAX_OPS] = {};
  const char* tags[RIG_MAX_OPS] = {};
  int count = 0;
  uint32_t BeginEvent(const char* tag) override {
    if (!enabled) return 0;
    const int i = count < RIG_MAX_OPS ? count : RIG_MAX_OPS - 1;
    ++count;
    tags[i] = tag;
    start_ = tc_ticks_now();
    return (uint32_t)i;
  }
  void EndEvent(uint32_t handle) override {
    const uint32_t now = tc_ticks_now();
    if (!enabled) return;
    ticks[handle] += now - start_;
  }

 private:
  uint32_t start_ = 0;
};

Resolver g_resolver;
TickProfiler g_profiler;

void put(const char* text) { semihost_write(text); }

void put_u32(uint32_t x) {
  char digits[12];
  int k = 11;
  digits[k] = 0;
  do {
    digits[--k] = (char)('0' + x % 10u);
    x /= 10u;
  } while (x);
  put(digits + k);
}

void fill_inputs(tflite::MicroInterpreter& interpreter) {
  for (int i = 0; i < rig_n_inputs; ++i) {
    memcpy(interpreter.input(i)->data.raw, rig_inputs[i], rig_input_bytes[i]);
  }
}

bool outputs_match(tflite::MicroInterpreter& interpreter) {
  for (int i = 0; i < rig_n_outputs; ++i) {
    const TfLiteTensor* out = interpreter.output(i);
    if (out->bytes != rig_output_bytes[i] ||
        memcmp(out->data.raw, rig_outputs[i], rig_output_bytes[i]) != 0) {
      return false;
    }
  }
  return true;
}

uint32_t profiler_overhead(int pairs) {
  tflite::MicroProfilerInterface* p = &g_profiler;
  const uint32_t t0 = tc_ticks_now();
  for (int i = 0; i < pairs; ++i) {
    p->EndEvent(p->BeginEvent("overhead"));
    g_profiler.count = 0;
  }
  const uint32_t ticks = tc_ticks_now() - t0;
  g_profiler.ticks[0] = 0;
  return ticks;
}

}  // namespace

int main() {
  RegisterDebugLogCallback(put);
  tc_ticks_init();
  const int pairs = 256;
  put("overhead ");
  put_u32(pairs);
  put(" ");
  put_u32(profiler_overhead(pairs));
  put("\n");
  if (register_ops(g_resolver) != kTfLiteOk) {
    put("error register_ops\n");
    return 2;
  }
  tflite::MicroInterpreter interpreter(tflite::GetModel(g_model_data), g_resolver, rig_arena,
                                       rig_arena_size, nullptr, &g_profiler);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    put("error AllocateTensors\n");
    return 2;
  }
  bool pass = true;
  int ops = 0;
  for (int r = 0; r < rig_repeats; ++r) {
    fill_inputs(interpreter);
    g_profiler.count = 0;
    if (interpreter.Invoke() != kTfLiteOk) {
      put("error Invoke\n");
      return 2;
    }
    ops = g_profiler.count;
    pass = pass && outputs_match(interpreter);
  }
  for (int i = 0; i < ops && i < RIG_MAX_OPS; ++i) {
    put("op ");
    put_u32((uint32_t)i);
    put(" ");
    put(g_profiler.tags[i] ? g_profiler.tags[i] : "?");
    put(" ");
    put_u32(g_profiler.ticks[i]);
    put("\n");
  }
  g_profiler.enabled = false;
  uint32_t total = 0;
  for (int r = 0; r < rig_repeats; ++r) {
    fill_inputs(interpreter);
    const uint32_t start = tc_ticks_now();
    const TfLiteStatus status = interpreter.Invoke();
    total += tc_ticks_now() - start;
    pass = pass && status == kTfLiteOk && outputs_match(interpreter);
  }
  put("invoke ");
  put_u32(total);
  put("\nrepeats ");
  put_u32((uint32_t)rig_repeats);
  put(pass ? "\ncheck PASS\n" : "\ncheck FAIL\n");
  return pass ? 0 : 1;
}
