// Calls it: linking this against mode_a.cpp built for another mode must fail.
#include <sydra/alloc/modes.hpp>

void engine_attach(sydra::alloc::AllocatorHandle* handle);

int main() {
  engine_attach(nullptr);
  return 0;
}
