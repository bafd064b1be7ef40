// The configured handle, as an engine would use it: pass the type-erased
// Allocator around, allocate a few shapes, then print what the handle saw.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>

#include <cstdio>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

struct Row {  // a 48-byte engine record
  std::uint64_t key;
  double value;
  char tag[32];
};

void ingest(sa::Allocator a, std::vector<Row*>& rows, int n) {
  for (int i = 0; i < n; ++i) {
    Row* r = a.create<Row>();
    if (r == nullptr) return;
    r->key = static_cast<std::uint64_t>(i);
    r->value = i * 0.5;
    std::snprintf(r->tag, sizeof r->tag, "row-%d", i);
    rows.push_back(r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = argc > 1 && std::string_view(argv[1]) == "--json";
  sa::AllocatorHandle handle;
  sa::Allocator a = handle.allocator();

  std::vector<Row*> rows;
  ingest(a, rows, 1000);
  void* page = a.alloc(8192, 64);  // a large, aligned buffer: the fallback heap's
  // Another thread frees half the rows: cross-thread frees.
  std::thread([&] {
    for (std::size_t i = 0; i < rows.size(); i += 2) a.destroy(rows[i]);
  }).join();

  // Generic lambdas, so that each mode compiles only the branch it has.
  [json](auto& h) {
    if constexpr (requires { h.snapshot_stats(); }) {
      const sa::Stats stats = h.snapshot_stats();
      if (json) {
        std::puts(sa::to_json(stats).c_str());
      } else {
        fmt::print("{}", stats);
      }
    } else if constexpr (requires { h.leaks(); }) {
      std::printf("mode %s: %llu blocks, %llu bytes live (this mode keeps no stats)\n", std::string(sa::mode).c_str(),
                  static_cast<unsigned long long>(h.leaks().blocks), static_cast<unsigned long long>(h.leaks().bytes));
    } else {
      std::printf("mode %s: no stats and no live counts in this build\n", std::string(sa::mode).c_str());
    }
  }(handle);

  for (std::size_t i = 1; i < rows.size(); i += 2) a.destroy(rows[i]);
  a.free(page, 8192, 64);
  return [](auto& h) {
    if constexpr (requires { h.collect_garbage(); }) h.collect_garbage();
    if constexpr (requires { h.leaks(); }) {
      const sa::LeakReport left = h.leaks();
      std::printf("mode %s: after cleanup %llu blocks live\n", std::string(sa::mode).c_str(),
                  static_cast<unsigned long long>(left.blocks));
      return left.blocks == 0 ? 0 : 1;
    } else {
      return 0;
    }
  }(handle);
}
