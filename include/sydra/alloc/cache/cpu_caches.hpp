// CpuCaches: one small stack of free blocks per size class per CPU, in front
// of the buckets. Any thread running on a CPU uses that CPU's stacks, through
// restartable sequences (pal/percpu.hpp): no lock and no atomic
// read-modify-write, however many threads there are. The memory they cache
// is bounded by CPUs x classes x capacity and does not grow with threads; a
// thread that sleeps holds none of it.
//
// Without rseq (not compiled in, or not registered when the handle is built)
// the same stacks are used under a spin lock each, a thread picking stack
// (thread token mod CPUs): one uncontended locked instruction per operation,
// still batched towards the buckets. A thread that has no rseq area in a
// process that does (a thread made without glibc) gets `no_cpu` and its caller
// goes straight to the bucket, under the bucket's lock.
#pragma once

#include <sydra/alloc/detail/count_and_pops.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/mixin/lock_timing.hpp>
#include <sydra/alloc/pal/os_memory.hpp>
#include <sydra/alloc/pal/percpu.hpp>
#include <sydra/alloc/slab/size_classes.hpp>

#include <array>
#include <cstdint>
#include <mutex>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct CpuCacheOptions {
  std::size_t bytes_per_class = 16 * 1024;  // per CPU: capacity = this / class size, within [min, max]
  std::uint32_t min_blocks = 8;
  std::uint32_t max_blocks = 64;
  std::size_t max_bytes_per_class = 64 * 1024;  // large classes: min_blocks gives way to this (at least 2 blocks)
};

template <class Classes>
class CpuCaches {
 public:
  explicit CpuCaches(const CpuCacheOptions& options) noexcept {
    ncpu_ = pal::possible_cpus();
    std::size_t off = 0;
    for (unsigned c = 0; c < Classes::count; ++c) {
      std::size_t cap = cache_blocks(Classes::sizes[c], options.bytes_per_class, options.min_blocks,
                                     options.max_blocks, options.max_bytes_per_class);
      if (cap > pal::CpuStack::max_capacity) cap = pal::CpuStack::max_capacity;
      capacity_[c] = static_cast<std::uint32_t>(cap);
      offset_[c] = off;
      off += (pal::CpuStack::bytes_for(cap) + 15) & ~std::size_t{15};
    }
    stride_ = (off + 63) & ~std::size_t{63};
    bytes_ = (ncpu_ * stride_ + pal::page_bytes - 1) / pal::page_bytes * pal::page_bytes;
    base_ = static_cast<char*>(pal::reserve(bytes_, pal::page_bytes));
    if (base_ == nullptr) return;  // no caches: every operation reports no_cpu, callers use the bucket
    for (unsigned cpu = 0; cpu < ncpu_; ++cpu)
      for (unsigned c = 0; c < Classes::count; ++c) stack(cpu, c)->capacity = capacity_[c];
    if (pal::rseq_registered()) {
      rseq_cpus_ = ncpu_;
    } else {
      void* mem = pal::reserve(sizeof(SpinMutex) * ncpu_, pal::page_bytes);
      if (mem == nullptr) {
        pal::release(base_, bytes_);
        base_ = nullptr;
        return;
      }
      locks_ = static_cast<SpinMutex*>(mem);
      for (unsigned cpu = 0; cpu < ncpu_; ++cpu) ::new (&locks_[cpu]) SpinMutex();
    }
  }
  CpuCaches(const CpuCaches&) = delete;
  CpuCaches& operator=(const CpuCaches&) = delete;
  ~CpuCaches() {
    pal::release(base_, bytes_);
    if (locks_ != nullptr) pal::release(locks_, sizeof(SpinMutex) * ncpu_);
  }

  bool locked_mode() const noexcept { return locks_ != nullptr; }
  unsigned cpus() const noexcept { return ncpu_; }
  std::uint32_t capacity(unsigned cls) const noexcept { return capacity_[cls]; }

  // ---- rseq sequences: a block, pal::pop_empty or pal::pop_no_cpu ----------
  template <bool Counted = true>
  SYDRA_FAST_PATH std::uintptr_t pop(unsigned cls) noexcept {
    return pal::cpu_pop<Counted>(base_ + offset_[cls], stride_, rseq_cpus_);
  }
  template <bool Counted = true>
  SYDRA_FAST_PATH pal::Push push(unsigned cls, void* p) noexcept {
    return pal::cpu_push<Counted>(base_ + offset_[cls], stride_, rseq_cpus_, p);
  }

  // ---- locked mode: the calling thread's stack under its lock --------------
  class Locked {
   public:
    Locked(CpuCaches& c, unsigned cls) noexcept
        : lock_(c.locks_[detail::thread_token() % c.ncpu_]),
          s_(c.stack(static_cast<unsigned>(detail::thread_token() % c.ncpu_), cls)) {
      lock_.lock();
    }
    ~Locked() { lock_.unlock(); }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;
    // The same accounting as the rseq sequences.
    void* pop(bool counted) noexcept {
      const detail::CountAndPops w = s_->word.load(std::memory_order_relaxed);
      const std::uint32_t n = w.count();
      if (n == 0) return nullptr;
      void* p = s_->slots()[n - 1];
      s_->word.store(counted ? w.after_pop() : w.after_take(), std::memory_order_release);
      return p;
    }
    bool push(void* p, bool counted) noexcept {
      const detail::CountAndPops w = s_->word.load(std::memory_order_relaxed);
      const std::uint32_t n = w.count();
      if (n >= s_->capacity) return false;
      s_->slots()[n] = p;
      s_->word.store(w.after_push(), std::memory_order_release);
      if (counted) s_->frees.store(s_->frees.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      return true;
    }

   private:
    SpinMutex& lock_;
    pal::CpuStack* s_;
  };

  // Runs f(stack) on every CPU's stack of a class, for snapshots (reads only).
  template <class F>
  void for_each_stack(unsigned cls, F f) const noexcept {
    if (base_ == nullptr) return;
    for (unsigned cpu = 0; cpu < ncpu_; ++cpu) f(*stack(cpu, cls));
  }

  // Takes every block out of one CPU's stack of a class (uncounted), for a
  // trim: the caller runs on that CPU (rseq) or holds its lock (locked mode).
  pal::CpuStack* stack(unsigned cpu, unsigned cls) const noexcept {
    return reinterpret_cast<pal::CpuStack*>(base_ + cpu * stride_ + offset_[cls]);
  }
  SpinMutex& lock_of(unsigned cpu) noexcept { return locks_[cpu]; }

  // fork(): every CPU's lock (locked mode only; the rseq stacks have none).
  void fork_lock() noexcept {
    if (locks_ != nullptr)
      for (unsigned cpu = 0; cpu < ncpu_; ++cpu) locks_[cpu].lock();
  }
  void fork_unlock() noexcept {
    if (locks_ != nullptr)
      for (unsigned cpu = ncpu_; cpu-- > 0;) locks_[cpu].unlock();
  }

 private:
  char* base_ = nullptr;
  std::size_t stride_ = 0;
  std::size_t bytes_ = 0;
  unsigned ncpu_ = 1;
  std::uint32_t rseq_cpus_ = 0;  // 0 in locked mode: every sequence answers no_cpu
  SpinMutex* locks_ = nullptr;
  std::array<std::size_t, Classes::count> offset_{};
  std::array<std::uint32_t, Classes::count> capacity_{};
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
