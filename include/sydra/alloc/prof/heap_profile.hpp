// A heap profiler's records: the sampled blocks that are live, and per call
// stack what its samples stand for (prof/sampler.hpp), kept three ways:
//   live    the blocks live now (estimated blocks and bytes per stack), and
//           every allocation since the profile was built;
//   window  the allocations between start() and stop();
//   peak    the live profile as it was when the live total last rose 1/64
//           above its previous peak (so at most 1/64 below the highest).
//
// Everything lives in one mapping of its own (never malloc: the profiler may
// sit inside one), with fixed capacity: 32,768 live samples and 16,384
// distinct stacks; a sample that finds a table full is counted in dropped()
// and not recorded. One lock guards the tables; it is taken only on a
// sample, on the free of a block the filter says may be sampled, and by the
// readers. The filter (a count per hash of the address, read without the
// lock) is what an unsampled free pays: one load, from 128 KiB.
//
// Profiles are written as gperftools heap profiles (text, read by
// google-pprof and by `go tool pprof`), with /proc/self/maps for the
// symbolisation the tool does.
#pragma once

#include <sydra/alloc/prof/stack.hpp>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace prof {

enum class ProfileKind { live, window, peak };

// What one sample recorded.
struct Sample {
  std::size_t size = 0;       // requested bytes
  std::size_t align = 0;      // requested alignment
  unsigned size_class = 0;    // the class that would have served it; the count of classes: none (the fallback)
  std::uint32_t thread = 0;   // the allocating thread's id (gettid)
  double weight = 0;          // allocations this sample stands for (1/p(size))
};

// One call stack's line of a profile: estimated blocks and bytes.
struct SiteRow {
  const std::uintptr_t* frames = nullptr;  // return addresses, innermost first; stable for the profile's life
  unsigned depth = 0;
  double blocks = 0;
  double bytes = 0;
};

struct ProfileTotals {
  double blocks = 0;
  double bytes = 0;
};

class HeapProfile {
 public:
  static constexpr std::size_t max_samples = std::size_t{1} << 15;
  static constexpr std::size_t max_stacks = std::size_t{1} << 14;
  static constexpr std::size_t filter_slots = std::size_t{1} << 16;

  // A profile in a mapping of its own; nullptr when there is no memory.
  static HeapProfile* create(std::size_t mean_bytes) noexcept;
  static void destroy(HeapProfile* p) noexcept;

  std::size_t mean_bytes() const noexcept { return mean_; }
  void set_own_text(TextRange r) noexcept { own_ = r; }
  TextRange own_text() const noexcept { return own_; }

  // A sampled block: its stack is found or added, and the block remembered.
  void record(void* p, const Sample& s, const std::uintptr_t* frames, unsigned depth) noexcept;
  // Without the lock: false means p is certainly not a sampled block.
  bool maybe_sampled(const void* p) const noexcept {
    return filter_[filter_slot(p)].load(std::memory_order_relaxed) != 0;
  }
  // p is freed: its record goes. False when p was not sampled.
  bool forget(const void* p) noexcept;
  // p's record, if p is a sampled block.
  bool find(const void* p, Sample* out) noexcept;

  void start() noexcept;  // the window profile restarts empty
  void stop() noexcept;

  // The profile's lines, most bytes first: up to max of them in out; returns
  // how many were written.
  std::size_t sites(ProfileKind kind, SiteRow* out, std::size_t max) noexcept;
  ProfileTotals totals(ProfileKind kind) noexcept;
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

  // A gperftools heap profile, to fd or to a file (created or truncated).
  // Allocates nothing. False when a write failed.
  bool write(int fd, ProfileKind kind) noexcept;
  bool write(const char* path, ProfileKind kind) noexcept;
  // For a signal handler (async-signal-safe): writes now if the lock is free,
  // else the next sample on any thread writes it. path must stay valid.
  void write_soon(const char* path) noexcept;

  void fork_lock() noexcept;
  void fork_unlock() noexcept;

  HeapProfile(const HeapProfile&) = delete;
  HeapProfile& operator=(const HeapProfile&) = delete;

 private:
  struct Stack;
  struct Block;
  explicit HeapProfile(std::size_t mean_bytes) noexcept;
  static std::size_t filter_slot(const void* p) noexcept {
    return static_cast<std::size_t>((reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull >>
                                    (64 - std::countr_zero(filter_slots)));
  }
  void lock() noexcept;
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }
  std::uint32_t stack_of(const std::uintptr_t* frames, unsigned depth) noexcept;
  Block* slot_of(const void* p) noexcept;
  void erase(Block* b) noexcept;
  void refresh_peak() noexcept;
  bool write_locked(int fd, ProfileKind kind) noexcept;
  bool write_file_locked(const char* path, ProfileKind kind) noexcept;
  void write_pending() noexcept;

  std::atomic<bool> locked_{false};
  std::size_t mean_;
  TextRange own_{};
  Stack* stacks_ = nullptr;
  std::uint32_t* stack_index_ = nullptr;  // open addressing: stack number + 1, 0 empty
  std::uint32_t stacks_used_ = 0;
  Block* blocks_ = nullptr;               // open addressing on the address, linear probing
  std::uint32_t blocks_live_ = 0;
  bool window_on_ = false;
  double live_bytes_ = 0;
  double peak_bytes_ = 0;  // the live total when the peak profile was taken
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<const char*> pending_{nullptr};
  std::atomic<std::uint16_t> filter_[filter_slots];
};

}  // namespace prof
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
