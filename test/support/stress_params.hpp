// The two knobs every stress test reads from the environment, so that CI can
// shrink a run under a slow tool and a failure can be replayed:
//   SYDRA_STRESS_SCALE  multiplies the work (default 1.0)
//   SYDRA_STRESS_SEED   fixes the random seed (default: a fresh one, printed)
#pragma once

#include <cstdlib>
#include <random>

namespace sydra::alloc::test {

inline double stress_scale() {
  const char* s = std::getenv("SYDRA_STRESS_SCALE");
  return s != nullptr ? std::atof(s) : 1.0;
}

inline unsigned stress_seed() {
  const char* s = std::getenv("SYDRA_STRESS_SEED");
  return s != nullptr ? static_cast<unsigned>(std::strtoul(s, nullptr, 10)) : std::random_device{}();
}

}  // namespace sydra::alloc::test
