// ShardTable<Shard>: a shard layer's shards, and which thread owns each.
//
// A thread takes a free shard (an atomic counter picks where to start
// looking; a compare-exchange on the shard's owner makes the thread its only
// owner) and gives it back when it exits. trim() and collect_garbage() borrow
// an unowned shard as its owner would, so that no thread takes it meanwhile.
// A fork's child settles what the threads it does not have held, and abandons
// a shard caught half-way through a change (Shard::busy).
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class Shard>
class ShardTable {
 public:
  ShardTable() = default;
  ShardTable(const ShardTable&) = delete;
  ShardTable& operator=(const ShardTable&) = delete;

  // n shards from backing, none of them in the table yet (open() puts them
  // there); false when backing has no room.
  bool make(Allocator backing, std::size_t n, std::uint32_t carve_bytes) noexcept {
    void* mem = backing.alloc(n * sizeof(Shard), alignof(Shard));
    if (mem == nullptr) return false;
    shards_ = static_cast<Shard*>(mem);
    for (std::size_t i = 0; i < n; ++i) {
      Shard* s = ::new (&shards_[i]) Shard(static_cast<std::uint32_t>(i));
      s->carve_bytes = carve_bytes;
    }
    made_ = n;
    return true;
  }
  void open() noexcept {
    count_ = made_;
    available_.store(made_, std::memory_order_relaxed);
  }
  // Back to backing, as make() took them (the layer's destructor, or a layer
  // that could not open).
  void unmake(Allocator backing) noexcept {
    if (shards_ == nullptr) return;
    for (std::size_t i = 0; i < made_; ++i) shards_[i].~Shard();
    backing.free(shards_, made_ * sizeof(Shard), alignof(Shard));
    shards_ = nullptr;
  }

  std::size_t size() const noexcept { return count_; }
  Shard& operator[](std::size_t i) noexcept { return shards_[i]; }
  const Shard* data() const noexcept { return shards_; }
  bool none_free() const noexcept { return available_.load(std::memory_order_relaxed) == 0; }

  // A free shard, now the calling thread's; nullptr when none is free.
  Shard* take() noexcept {
    if (none_free()) return nullptr;
    const std::uint64_t me = detail::thread_token();
    const std::size_t start = next_.fetch_add(1, std::memory_order_relaxed) % count_;
    for (std::size_t i = 0; i < count_; ++i) {
      Shard& s = shards_[(start + i) % count_];
      std::uint64_t expected = 0;
      if (s.owner_thread.load(std::memory_order_relaxed) == 0 &&
          s.owner_thread.compare_exchange_strong(expected, me, std::memory_order_acquire)) {
        available_.fetch_sub(1, std::memory_order_relaxed);
        return &s;
      }
    }
    return nullptr;
  }
  // Its owner leaves it, emptied: any thread may take it.
  void give_back(Shard& s) noexcept {
    s.owner_thread.store(0, std::memory_order_release);
    available_.fetch_add(1, std::memory_order_relaxed);
  }
  // Caught busy in a fork's child: its lists may be mid-change, so its free
  // blocks stay out of reach and no thread ever takes it again.
  static void abandon(Shard& s) noexcept { s.owner_thread.store(Shard::abandoned_owner, std::memory_order_release); }

  // Runs f(s) for each shard no thread owns, holding it as its owner would
  // (no thread may take it meanwhile).
  template <class F>
  void for_each_unowned(F&& f) noexcept {
    for (std::size_t i = 0; i < count_; ++i) with_unowned(shards_[i], f);
  }

  // In a fork's child, once the departed threads' bindings are given back: a
  // shard still owned by a thread other than this one was held outside any
  // binding at the fork (trim()'s drain empties unowned shards under a
  // borrowed ownership; a thread taking a shard owns it before its binding
  // says so). No one would ever release it: emptied (empty(s)) and released
  // here, or abandoned if caught busy; and the count of free shards
  // recomputed, since the fork may also have fallen between a take and its
  // count.
  template <class Empty>
  void settle_after_fork(Empty&& empty) noexcept {
    const std::uint64_t me = detail::thread_token();
    std::size_t free_shards = 0;
    for (std::size_t i = 0; i < count_; ++i) {
      Shard& s = shards_[i];
      const std::uint64_t owner = s.owner_thread.load(std::memory_order_acquire);
      if (owner != 0 && owner != me && owner != Shard::abandoned_owner) {
        if (s.caught_busy()) {
          abandon(s);
          continue;
        }
        empty(s);
        s.owner_thread.store(0, std::memory_order_release);
      }
      if (s.owner_thread.load(std::memory_order_relaxed) == 0) ++free_shards;
    }
    available_.store(free_shards, std::memory_order_relaxed);
  }

 private:
  template <class F>
  static void with_unowned(Shard& s, F& f) noexcept {
    std::uint64_t expected = 0;
    if (s.owner_thread.load(std::memory_order_relaxed) != 0 ||
        !s.owner_thread.compare_exchange_strong(expected, detail::thread_token(), std::memory_order_acquire))
      return;
    f(s);
    s.owner_thread.store(0, std::memory_order_release);
  }

  Shard* shards_ = nullptr;
  std::size_t made_ = 0;
  std::size_t count_ = 0;  // 0 until open(): no manager
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> available_{0};
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
