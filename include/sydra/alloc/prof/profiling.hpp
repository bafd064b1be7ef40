// The heap profiler as a policy opt-in (docs/profiling.md).
//
//   struct MyPolicy { ...; using Profiling = sydra::alloc::HeapProfiling; };
//
// A policy that names none gets NoProfiling: its handle holds an empty member
// and compiles no profiler code (sizeof unchanged, test/prof). With
// HeapProfiling, the handle's allocation fast path counts each request down
// on the thread's clock (one subtract, one branch: prof/sampler.hpp); a
// sampled allocation is served by the fallback, never a pool, so a pooled
// free (the slab proves the block unsampled) never looks at the profiler,
// and a fallback free pays one filter load (prof/heap_profile.hpp).
#pragma once

#include <sydra/alloc/prof/heap_profile.hpp>
#include <sydra/alloc/prof/sampler.hpp>
#include <sydra/alloc/prof/stack.hpp>

#include <type_traits>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct ProfilingOptions {
  // Off: nothing is recorded, and the thread's clock still runs (a slow path
  // once per mean_bytes allocated, which keeps other profiled handles'
  // samples unbiased).
  bool enabled = true;
  // The mean interval between samples, in bytes allocated by one thread.
  // The threads' clocks are shared by every profiled handle of the process,
  // so handles that profile at once should use one mean.
  std::size_t mean_bytes = prof::default_mean_bytes;
};

struct NoProfiling {
  struct Layer {
    static constexpr bool enabled = false;
    struct Options {};
    constexpr explicit Layer(const Options&) noexcept {}
  };
};

struct HeapProfiling {
  class Layer {
   public:
    static constexpr bool enabled = true;
    using Options = ProfilingOptions;

    explicit Layer(const Options& o) noexcept
        : mean_(o.mean_bytes == 0 ? prof::default_mean_bytes : o.mean_bytes),
          store_(o.enabled ? prof::HeapProfile::create(mean_) : nullptr) {
      if (store_ != nullptr) prof::prime_unwinder();
    }
    ~Layer() { prof::HeapProfile::destroy(store_); }
    Layer(const Layer&) = delete;
    Layer& operator=(const Layer&) = delete;

    // The slow path of prof::due(): whether this allocation is sampled.
    prof::Decision decide(std::size_t len) noexcept {
      const prof::Decision d = prof::decide(len, mean_);
      return store_ != nullptr ? d : prof::Decision{};
    }
    // A sampled block, served: its stack from the frame that returns to `from`.
    void record(void* p, std::size_t len, std::size_t align, unsigned cls, double weight,
                std::uintptr_t from) noexcept {
      std::uintptr_t frames[prof::max_frames];
      const unsigned depth = prof::capture_stack(frames, prof::max_frames, from, store_->own_text());
      store_->record(p, prof::Sample{len, align, cls, 0, weight}, frames, depth);
    }
    // A fallback block is freed: one load says it was not sampled.
    SYDRA_FAST_PATH void forget(const void* p) noexcept {
      if (store_ != nullptr && SYDRA_UNLIKELY(store_->maybe_sampled(p))) store_->forget(p);
    }
    bool sampled(const void* p) noexcept {
      return store_ != nullptr && store_->maybe_sampled(p) && store_->find(p, nullptr);
    }

    prof::HeapProfile* profile() noexcept { return store_; }
    void fork_lock() noexcept {
      if (store_ != nullptr) store_->fork_lock();
    }
    void fork_unlock() noexcept {
      if (store_ != nullptr) store_->fork_unlock();
    }

   private:
    std::size_t mean_;
    prof::HeapProfile* store_;
  };
};

namespace detail {
template <class Policy>
consteval auto pick_profiling() {
  if constexpr (requires { typename Policy::Profiling; }) return static_cast<typename Policy::Profiling*>(nullptr);
  else return static_cast<NoProfiling*>(nullptr);
}
}  // namespace detail
// A policy's profiler: Policy::Profiling, else NoProfiling.
template <class Policy>
using PolicyProfiling = std::remove_pointer_t<decltype(detail::pick_profiling<Policy>())>;

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
