// Built without any mode override: checks that the installed/configured alias
// is the mode Meson was configured with (argv[1] names it).
#include <sydra/alloc.hpp>

#include <cstdio>
#include <cstring>
#include <string>

namespace sa = sydra::alloc;

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string expected = argv[1];
  int failures = 0, checks = 0;
  auto check = [&](bool ok, const char* what) {
    ++checks;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    failures += !ok;
  };
  check(sa::mode == expected, "sydra::alloc::mode matches -Dallocator_mode");
  check(sa::is_mimalloc == (expected == "mimalloc"), "is_mimalloc");
  check(sa::is_small_pool == (expected == "small_pool"), "is_small_pool");
  check(std::string(sa::AllocatorHandle::PolicyType::name) == expected, "AllocatorHandle's policy");
  sa::AllocatorHandle h;
  void* p = h.alloc(100, 8);
  check(p != nullptr, "alloc through the configured handle");
  h.free(p, 100, 8);
  check(h.leaks().blocks == 0, "no leak");
  [&](auto& handle) {  // generic, so that the discarded branch is not checked in other modes
    if constexpr (requires { handle.enter_epoch(); }) {
      const auto e = handle.enter_epoch();
      check(e.has_value() == (SYDRA_ALLOC_SHARDS > 0), "epochs follow -Dallocator_shards");
      if (e) handle.leave_epoch(*e);  // a handle destroyed under a pin is misuse (checked builds abort)
    } else {
      check(!sa::is_small_pool, "only small_pool has epochs");
    }
  }(h);
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
