// ThreadCounters<N>: N counters that every thread may bump without sharing a
// cache line. Each thread writes its own block (a relaxed load and a release
// store: no atomic read-modify-write); a snapshot sums every thread's block
// plus what exited threads left behind, under the thread registry's lock.
//
// Semantics (docs/stats.md): each counter only grows, is read whole, and is
// exact once the threads that bumped it are quiet. A snapshot taken while
// threads run sees each thread's counters as of some moment during the
// snapshot; read "removal" counters before "addition" counters and a
// difference such as live = allocs - frees never goes below zero, because a
// free's release store publishes the alloc counted before it.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

template <std::size_t N>
class ThreadCounters final : public ThreadHost {
 public:
  struct alignas(64) Block {
    std::array<std::atomic<std::uint64_t>, N> v{};
  };

  explicit ThreadCounters(Allocator backing) noexcept : backing_(backing) { id_ = register_host(this); }
  ThreadCounters(const ThreadCounters&) = delete;
  ThreadCounters& operator=(const ThreadCounters&) = delete;
  ~ThreadCounters() {
    unregister_host(
        id_, [](void* self, void* state) { static_cast<ThreadCounters*>(self)->drop(static_cast<Block*>(state)); },
        this);
  }

  // The calling thread's block, or nullptr (thread exiting, memory short):
  // bump() then counts into the shared leftovers instead.
  SYDRA_FAST_PATH Block* local() noexcept {
    ThreadEntry* e = thread_entry(id_, this);
    return e != nullptr ? static_cast<Block*>(e->state) : nullptr;
  }
  SYDRA_FAST_PATH void bump(Block* b, std::size_t i, std::uint64_t n = 1) noexcept {
    if (SYDRA_LIKELY(b != nullptr)) {
      b->v[i].store(b->v[i].load(std::memory_order_relaxed) + n, std::memory_order_release);
    } else {
      departed_[i].fetch_add(n, std::memory_order_acq_rel);
    }
  }

  // Sums counters `which[0..K)`, in that order, each over every thread, all
  // under one hold of the registry lock.
  template <std::size_t K>
  std::array<std::uint64_t, K> sum(const std::array<std::size_t, K>& which) const noexcept {
    struct Ctx {
      const ThreadCounters* self;
      const std::array<std::size_t, K>* which;
      std::array<std::uint64_t, K> out;
    } ctx{this, &which, {}};
    for_each_thread_state(
        id_, static_cast<unsigned>(K),
        [](void* c, unsigned i, void* state) {
          auto* x = static_cast<Ctx*>(c);
          x->out[i] += static_cast<Block*>(state)->v[(*x->which)[i]].load(std::memory_order_acquire);
        },
        &ctx,
        [](void* c, unsigned i) {  // the leftovers, under the same lock as the blocks
          auto* x = static_cast<Ctx*>(c);
          x->out[i] = x->self->departed_[(*x->which)[i]].load(std::memory_order_acquire);
        });
    return ctx.out;
  }
  std::uint64_t sum(std::size_t i) const noexcept { return sum(std::array<std::size_t, 1>{i})[0]; }

 private:
  void* make_thread_state() noexcept override {
    void* mem = backing_.alloc(sizeof(Block), alignof(Block));
    return mem != nullptr ? ::new (mem) Block{} : nullptr;
  }
  void on_thread_exit(void* state) noexcept override { drop(static_cast<Block*>(state)); }
  // Under the registry lock: the thread's counts move to the leftovers, so no
  // sum sees them twice or not at all.
  void drop(Block* b) noexcept {
    for (std::size_t i = 0; i < N; ++i)
      departed_[i].fetch_add(b->v[i].load(std::memory_order_relaxed), std::memory_order_acq_rel);
    b->~Block();
    backing_.free(b, sizeof(Block), alignof(Block));
  }

  Allocator backing_;
  std::uint64_t id_ = 0;
  std::array<std::atomic<std::uint64_t>, N> departed_{};
};

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
