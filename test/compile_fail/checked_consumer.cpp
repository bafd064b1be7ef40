// A program that uses a handle. Built with the library's SYDRA_ALLOC_CHECKED
// it links; built with the other setting it must not (diagnostics.hpp).
#include <sydra/alloc/modes.hpp>

int main() {
  sydra::alloc::BasicAllocatorHandle<sydra::alloc::DefaultPolicy> h;
  void* p = h.alloc(32, 8);
  h.free(p, 32, 8);
  return 0;
}
