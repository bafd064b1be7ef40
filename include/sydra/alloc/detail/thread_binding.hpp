// Which shard and epoch slot each thread holds, per shard manager, and what
// happens to them when the thread exits. The fast path reads only ShardCache,
// a trivially destructible thread_local (no TLS wrapper call); the full list
// and its exit hook live in lib/thread_binding.cpp.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <cstdint>

namespace sydra::alloc {
inline namespace v1 {
namespace detail {

// A shard manager as the thread registry sees it.
class ShardManagerBase {
 public:
  // Called at thread exit, under the registry lock, only while the manager is
  // registered: gives back what the thread held.
  virtual void on_thread_exit(void* shard, void* epoch_slot) noexcept = 0;

 protected:
  ShardManagerBase() = default;
  ~ShardManagerBase() = default;
};

struct ShardCache {
  std::uint64_t manager_id;  // 0: nothing cached
  void* shard;               // nullptr: this thread has no shard of that manager (a miss)
  void* epoch_slot;
  bool exiting;  // thread teardown has released everything: take the shard-less path
  std::uint64_t token;  // this thread's ownership token, 0 until first asked for
};

[[gnu::tls_model("initial-exec")]] inline constinit thread_local ShardCache shard_cache{};

struct ThreadBinding {
  std::uint64_t manager_id;
  ShardManagerBase* manager;
  void* shard;
  void* epoch_slot;
};

// Registry of live managers, so a thread that outlives one never touches it.
std::uint64_t register_manager(ShardManagerBase* m) noexcept;  // returns its unique id
void unregister_manager(std::uint64_t id) noexcept;

// The calling thread's binding to a manager, created on first use; nullptr
// when memory is short or the thread is exiting.
ThreadBinding* bind_thread(std::uint64_t id, ShardManagerBase* m) noexcept;

std::uint64_t new_thread_token() noexcept;

// A nonzero token unique to the calling thread, for shard ownership.
inline std::uint64_t thread_token() noexcept {
  if (SYDRA_UNLIKELY(shard_cache.token == 0)) shard_cache.token = new_thread_token();
  return shard_cache.token;
}

}  // namespace detail
}  // namespace v1
}  // namespace sydra::alloc
