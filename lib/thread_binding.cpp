// Thread bindings: which shard and epoch slot a thread holds in each shard
// manager, and their release when the thread exits.
//
// Managers register here and get an id that is never reused, so a stale
// cache entry can never match a new manager at a recycled address. The
// registry lock is held while an exiting thread releases its shards, and
// while a manager unregisters, so neither can outlive the other mid-release.
#include <sydra/alloc/detail/thread_binding.hpp>

#include <atomic>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace sydra::alloc {
inline namespace v1 {
namespace detail {
namespace {

struct Registry {
  std::mutex mu;
  std::unordered_map<std::uint64_t, ShardManagerBase*> live;
};

Registry& registry() noexcept {
  static Registry* r = new Registry;  // never destroyed: threads may exit after static teardown
  return *r;
}

std::atomic<std::uint64_t> next_manager_id{1};
std::atomic<std::uint64_t> next_thread_token{1};

struct ThreadRecord {
  std::vector<ThreadBinding> bindings;
  ~ThreadRecord() {
    // From here on this thread allocates without a shard (other thread_local
    // destructors may still run and allocate).
    shard_cache = ShardCache{0, nullptr, nullptr, true, shard_cache.token};
    Registry& r = registry();
    std::lock_guard g(r.mu);
    for (ThreadBinding& b : bindings) {
      auto it = r.live.find(b.manager_id);
      if (it != r.live.end()) it->second->on_thread_exit(b.shard, b.epoch_slot);
    }
    bindings.clear();
  }
};

thread_local ThreadRecord record;

}  // namespace

std::uint64_t register_manager(ShardManagerBase* m) noexcept {
  const std::uint64_t id = next_manager_id.fetch_add(1, std::memory_order_relaxed);
  Registry& r = registry();
  std::lock_guard g(r.mu);
  try {
    r.live.emplace(id, m);
  } catch (...) {
    // Unregistered managers are simply never released into at thread exit:
    // their shards stay owned until the manager is destroyed.
  }
  return id;
}

void unregister_manager(std::uint64_t id) noexcept {
  Registry& r = registry();
  std::lock_guard g(r.mu);
  r.live.erase(id);
}

ThreadBinding* bind_thread(std::uint64_t id, ShardManagerBase* m) noexcept {
  if (shard_cache.exiting) return nullptr;
  for (ThreadBinding& b : record.bindings)
    if (b.manager_id == id) return &b;
  // A new binding: first forget the ones whose manager is gone, so that a
  // long-lived thread serving many short-lived handles does not grow its list.
  {
    Registry& r = registry();
    std::lock_guard g(r.mu);
    std::erase_if(record.bindings, [&r](const ThreadBinding& b) { return r.live.count(b.manager_id) == 0; });
  }
  try {
    return &record.bindings.emplace_back(ThreadBinding{id, m, nullptr, nullptr});
  } catch (...) {
    return nullptr;
  }
}

std::uint64_t new_thread_token() noexcept { return next_thread_token.fetch_add(1, std::memory_order_relaxed); }

}  // namespace detail
}  // namespace v1
}  // namespace sydra::alloc
