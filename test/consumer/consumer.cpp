// Engine-side code: templates over the handle, the type-erased Allocator,
// the STL adapter, and the stats where the mode has them.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>
#include <sydra/alloc/stl.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace sa = sydra::alloc;

// Whether the handle keeps stats. A handle that declares has_stats says so
// itself (its snapshot_stats() may exist and refuse to compile without a
// stats layer); otherwise the member's presence is the answer.
template <class Handle>
constexpr bool keeps_stats() {
  if constexpr (requires { Handle::has_stats; }) return Handle::has_stats;
  else return requires(Handle& h) { h.snapshot_stats(); };
}

template <class Handle>
int use(Handle& h, const std::string& expected) {
  std::vector<int, sa::StlAllocator<int>> v{sa::StlAllocator<int>(h.allocator())};
  for (int i = 0; i < 1000; ++i) v.push_back(i);
  if (v[999] != 999) return 1;
  if constexpr (keeps_stats<Handle>()) {
    const std::string json = sa::to_json(h.snapshot_stats());
    if (json.find("\"mode\":\"" + expected + "\"") == std::string::npos) return 2;
  }
  return sa::mode == expected ? 0 : 3;
}

// ---------------------------------------------------------------------------
// SPOT RESERVED: composing two policies from the consumer side.
// The internals rewrite (handle/concepts/policy) fills this in: engine code
// that composes two policies of its own choosing, built through the installed
// library and the subproject like the rest of this file. Until then it returns
// 0 (success); main() already calls it, and any non-zero value fails the
// consumer test with rc 4.
int compose_two_policies() { return 0; }
// ---------------------------------------------------------------------------

int main(int argc, char** argv) {
  const std::string expected = argc > 1 ? argv[1] : "small_pool";
  sa::AllocatorHandle h;
  int rc = use(h, expected);
  if (rc == 0 && compose_two_policies() != 0) rc = 4;
  std::printf("consumer: mode %s, expected %s, rc %d\n", std::string(sa::mode).c_str(), expected.c_str(), rc);
  return rc;
}
