// ShardBindings<Shard>: a shard layer's part of each thread's registry entry
// (detail/thread_registry.hpp). A thread's binding holds its shard, its
// epoch slot and retire bag, and the count of its retires; the entry also
// caches the shard, so that the fast path reaches it with one thread-local
// load (entry(), bound(), has_shard()).
//
// The layer stays the registry's host and decides what a binding does: when
// its thread takes a shard, and what the thread gives back when it leaves
// (ShardLayer::drop). This part keeps where the entry is and what a binding
// is made of.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/epoch/epoch_domain.hpp>
#include <sydra/alloc/epoch/retire_bags.hpp>
#include <sydra/alloc/mixin/stats.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class Shard>
class ShardBindings {
 public:
  struct Binding {
    Shard* shard = nullptr;
    EpochDomain::Slot* slot = nullptr;
    RetireBags::Bag* bag = nullptr;
    Counter<> retired;
  };

  ShardBindings() = default;
  ShardBindings(const ShardBindings&) = delete;
  ShardBindings& operator=(const ShardBindings&) = delete;

  SYDRA_FAST_PATH const detail::ThreadEntry& entry() const noexcept {
    return *reinterpret_cast<const detail::ThreadEntry*>(
        reinterpret_cast<const char*>(&detail::thread_cache.entries[0]) + entry_offset_);
  }
  // The entry is this layer's: the thread is bound (entry.hot is its shard,
  // or no_shard_ for a thread that found none free).
  SYDRA_FAST_PATH bool bound(const detail::ThreadEntry& e) const noexcept { return e.id == entry_id_; }
  // Of a bound entry: the thread holds a shard. Asked only after a pop
  // failed: a pop from no_shard_ always fails.
  SYDRA_FAST_PATH static bool has_shard(const detail::ThreadEntry& e) noexcept { return e.hot != &no_shard_; }
  // What an entry caches of a binding's shard.
  static Shard* hot(Shard* s) noexcept { return s != nullptr ? s : &no_shard_; }

  // Joins the thread registry as host; false when it has no room.
  bool join(detail::ThreadHost* host) noexcept {
    id_ = detail::register_host(host);
    slot_ = static_cast<std::uint32_t>(id_ % detail::ThreadCache::ways);
    entry_offset_ = slot_ * sizeof(detail::ThreadEntry);
    return id_ != 0;
  }
  // From now on bound() matches the layer's entries.
  void open() noexcept { entry_id_ = id_; }
  std::uint64_t id() const noexcept { return id_; }

  // The host's make_thread_state(): nullptr when memory is short.
  static Binding* make(Allocator backing) noexcept {
    void* mem = backing.alloc(sizeof(Binding), alignof(Binding));
    return mem != nullptr ? ::new (mem) Binding{} : nullptr;
  }
  // The last of a binding, once its thread gave back what it held; its
  // retire count stays in retired_total().
  void destroy(Allocator backing, Binding* b, bool counts_retired) noexcept {
    if (counts_retired) departed_retired_.fetch_add(b->retired.get(), std::memory_order_acq_rel);
    b->~Binding();
    backing.free(b, sizeof(Binding), alignof(Binding));
  }

  // Blocks retired by every thread, live or departed.
  std::uint64_t retired_total() const noexcept {
    struct Sum {
      const ShardBindings* self;
      std::uint64_t n;
    } sum{this, 0};
    detail::for_each_thread_state(
        id_, 1, [](void* c, unsigned, void* state) { static_cast<Sum*>(c)->n += static_cast<Binding*>(state)->retired.get(); },
        &sum,
        [](void* c, unsigned) {  // under the same lock as the bindings: an exit moves its count here
          auto* x = static_cast<Sum*>(c);
          x->n = x->self->departed_retired_.load(std::memory_order_acquire);
        });
    return sum.n;
  }

 private:
  std::uint64_t id_ = 0;  // 0 never matches an entry: no manager
  std::uint32_t slot_ = 0;  // id_'s entry in the thread cache
  std::size_t entry_offset_ = 0;  // and its offset in the cache's entries
  // What bound() compares an entry's id with: id_ once the layer runs, and
  // before (or with no manager) an id no entry has, not even an empty one.
  std::uint64_t entry_id_ = ~std::uint64_t{0};
  // What a bound thread without a shard finds in its entry: a shard whose
  // heads are always empty and that owns no slab, so that the fast paths
  // need no null test (a pop from it fails, no free matches it). Never
  // written; constant-initialized, as the malloc library may use a handle
  // before any constructor has run.
  static constinit inline Shard no_shard_{0};
  std::atomic<std::uint64_t> departed_retired_{0};
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
