// libFuzzer target: the .npy parser (CALVIN's npz members). Seeds: tests/fuzz/make_seeds.py.
#include <cstdint>

#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  robocache::Array out;
  (void)robocache::io::parse_npy(data, size, "fuzz.npy", &out);
  return 0;
}
