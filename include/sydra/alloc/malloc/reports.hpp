// What a malloc built on a handle (malloc_override.hpp) reports when the
// environment asks:
//   - SYDRA_ALLOC_STATS=1 prints the stats table to stderr at exit, =json the
//     JSON;
//   - SYDRA_ALLOC_PROF=PATH[:MEAN_BYTES] samples the heap (HeapProfiling, one
//     allocation per MEAN_BYTES on average, 512 KiB by default) and writes a
//     gperftools heap profile of the live heap to PATH at exit (PATH.<pid> in
//     a forked child), to PATH.<n> on each SIGUSR2, and wherever
//     sydra_alloc_prof_dump(path) says (docs/profiling.md).
// Apart from Process, which must stay usable before main and from the
// loader's first allocation: nothing here runs until the handle is built.
#pragma once

#include <sydra/alloc/format.hpp>
#include <sydra/alloc/handle.hpp>
#include <sydra/alloc/prof/profiling.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace malloc_detail {

template <class Policy>
class Reports {
 public:
  using Handle = BasicAllocatorHandle<Policy>;

  // SYDRA_ALLOC_PROF=PATH[:MEAN_BYTES], read before the handle is built
  // (getenv does not allocate); PATH is kept in static storage.
  static ProfilingOptions profiling_options() noexcept {
    ProfilingOptions o;
    const char* v = std::getenv("SYDRA_ALLOC_PROF");
    o.enabled = v != nullptr && *v != '\0';
    if (!o.enabled) return o;
    std::size_t n = std::strlen(v);
    if (const char* colon = std::strrchr(v, ':'); colon != nullptr && colon[1] != '\0') {
      char* end = nullptr;
      const unsigned long long mean = std::strtoull(colon + 1, &end, 10);
      if (*end == '\0' && mean > 0) {
        o.mean_bytes = static_cast<std::size_t>(mean);
        n = static_cast<std::size_t>(colon - v);
      }
    }
    if (n >= sizeof prof_path_ - 32) n = sizeof prof_path_ - 32;  // room for ".<pid>" and ".<n>"
    std::memcpy(prof_path_, v, n);
    prof_path_[n] = '\0';
    return o;
  }

  // Once the handle is ready: what this sets up may allocate (atexit).
  static void start(Handle* h) noexcept {
    handle_ = h;
    open_stats_fd();
    if constexpr (Handle::profiled) start_profiling();
  }

  // sydra_alloc_prof_dump(path): the live heap's profile to path (nullptr:
  // SYDRA_ALLOC_PROF's PATH). 0 on success; -1 when profiling is off or the
  // file could not be written.
  static int prof_dump(Handle* h, const char* path) noexcept {
    if constexpr (Handle::profiled) {
      prof::HeapProfile* p = h != nullptr ? h->heap_profile() : nullptr;
      if (p == nullptr) return -1;
      return p->write(path != nullptr ? path : prof_path_, prof::ProfileKind::live) ? 0 : -1;
    } else {
      (void)h;
      (void)path;
      return -1;
    }
  }

 private:
  static Handle* handle() noexcept { return handle_; }

  // SYDRA_ALLOC_STATS: stderr is duplicated when the handle is built,
  // because programs close their standard streams in atexit handlers
  // registered after ours, which therefore run before it (coreutils'
  // close_stdout does).
  static void open_stats_fd() noexcept {
    const char* v = std::getenv("SYDRA_ALLOC_STATS");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "0") == 0) return;
    stats_json_ = std::strcmp(v, "json") == 0;
    stats_fd_ = ::fcntl(2, F_DUPFD_CLOEXEC, 64);
    if (stats_fd_ >= 0) std::atexit(&print_stats_at_exit);  // may allocate: the handle is ready
  }
  static void print_stats_at_exit() noexcept {
    std::string text;
    if constexpr (Handle::has_stats) {
      try {
        const Stats s = handle()->snapshot_stats();
        text = stats_json_ ? to_json(s) + "\n" : fmt::format("{}\n", s);
      } catch (...) {
        text = "sydra-alloc: stats: out of memory while formatting\n";
      }
    } else {
      text = fmt::format("sydra-alloc: the {} policy keeps no stats\n", Policy::name);
    }
    for (std::size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(stats_fd_, text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(stats_fd_);
  }

  static void start_profiling() noexcept {
    prof::HeapProfile* p = handle()->heap_profile();
    if (p == nullptr) return;
    p->set_own_text(prof::own_text());  // frames inside this library are not the program's
    prof_pid_ = ::getpid();
    std::atexit(&write_profile_at_exit);
    struct sigaction sa {};
    sa.sa_handler = &write_profile_on_signal;
    sa.sa_flags = SA_RESTART;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGUSR2, &sa, nullptr);
  }
  // "PATH.<n>" into out, without allocating (a signal handler's).
  static void suffixed(char* out, std::size_t cap, std::uint64_t n) noexcept {
    std::size_t len = std::strlen(prof_path_);
    std::memcpy(out, prof_path_, len);
    char digits[24];
    int k = 0;
    do digits[k++] = static_cast<char>('0' + n % 10); while ((n /= 10) != 0);
    if (len + 2 + static_cast<std::size_t>(k) > cap) return;
    out[len++] = '.';
    while (k > 0) out[len++] = digits[--k];
    out[len] = '\0';
  }
  static void write_profile_at_exit() noexcept {
    if (::getpid() == prof_pid_) {
      handle()->heap_profile()->write(prof_path_, prof::ProfileKind::live);
    } else {  // a forked child: its own file, not its parent's
      char path[sizeof prof_path_];
      suffixed(path, sizeof path, static_cast<std::uint64_t>(::getpid()));
      handle()->heap_profile()->write(path, prof::ProfileKind::live);
    }
  }
  static void write_profile_on_signal(int) noexcept {
    const int saved = errno;
    suffixed(signal_path_, sizeof signal_path_, signal_dumps_.fetch_add(1, std::memory_order_relaxed) + 1);
    handle()->heap_profile()->write_soon(signal_path_);
    errno = saved;
  }

  static inline Handle* handle_ = nullptr;
  static inline int stats_fd_ = -1;
  static inline bool stats_json_ = false;
  static inline char prof_path_[4096] = {};
  static inline char signal_path_[4096] = {};
  static inline std::atomic<std::uint64_t> signal_dumps_{0};
  static inline pid_t prof_pid_ = 0;
};

}  // namespace malloc_detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
