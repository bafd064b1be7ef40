// Per-thread state, per host. A host is a layer of a handle that keeps
// something for each thread using it: the shard layer (a thread's shard, its
// epoch slot and retire bag) or a counter set (a thread's own counters, so
// that no counter is a single atomic every thread writes).
//
// The fast path reads one entry of a small thread-local table, direct-mapped
// by the host's id: an id match gives the host's state for this thread with
// no lock and no call. Ids are never reused, so an entry left behind by a
// destroyed host can never match a new one. The full list of a thread's
// bindings, and the hook that runs when the thread exits, live in
// lib/thread_registry.cpp.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

class ThreadHost {
 public:
  // Makes the calling thread's state (first use); nullptr when memory is short.
  virtual void* make_thread_state() noexcept = 0;
  // The pointer the fast path wants one load away, cached in the thread's
  // entry whenever the entry is (re)filled.
  virtual void* hot_of(void* /*state*/) noexcept { return nullptr; }
  // At thread exit, under the registry lock, only while the host is
  // registered: gives back what the thread held and frees its state.
  virtual void on_thread_exit(void* state) noexcept = 0;

 protected:
  ThreadHost() = default;
  ~ThreadHost() = default;
};

struct alignas(32) ThreadEntry {
  std::uint64_t id;  // 0: empty
  void* state;
  void* hot;  // a pointer the host wants one load away (the shard layer: the Shard)
};

struct ThreadCache {
  // Direct-mapped by host id. Ids are handed out in sequence and a handle
  // uses two or three, so 64 entries keep a thread's handles apart unless
  // it uses more than about twenty at once; a collision costs a trip through
  // the registry's lock, never a wrong answer.
  static constexpr unsigned ways = 64;
  ThreadEntry entries[ways];
  bool exiting;         // thread teardown has begun: take the paths that need no state
  std::uint64_t token;  // this thread's unique nonzero token, 0 until first asked for
};

[[gnu::tls_model("initial-exec")]] inline constinit thread_local ThreadCache thread_cache{};

// Registry of live hosts. register_host returns a unique id (0 when the
// registry is full: the host then works without per-thread state).
// unregister_host calls give_back(ctx, state) for every thread's state under
// the registry lock (give_back must not bind any thread), forgets the
// bindings, clears the calling thread's cached entry, and returns once no
// exiting thread can be inside the host's on_thread_exit.
std::uint64_t register_host(ThreadHost* host) noexcept;
void unregister_host(std::uint64_t id, void (*give_back)(void* ctx, void* state), void* ctx) noexcept;

// The slow path of thread_entry: finds or makes the calling thread's state
// for the host and caches it. nullptr when the thread is exiting or memory is
// short.
ThreadEntry* bind_thread(std::uint64_t id, ThreadHost* host) noexcept;

// Under the registry lock (so no thread exits meanwhile), `passes` times:
// begin(ctx, pass) if given, then f(ctx, pass, state) for every thread bound
// to the host. For snapshots: one pass per counter keeps a snapshot's reads
// of one counter across all threads together, and the whole snapshot short.
void for_each_thread_state(std::uint64_t id, unsigned passes, void (*f)(void* ctx, unsigned pass, void* state),
                           void* ctx, void (*begin)(void* ctx, unsigned pass) = nullptr) noexcept;

std::uint64_t new_thread_token() noexcept;

// fork(): the registry lock is taken before fork and released in both
// processes after it, so a child never inherits it held (see fork_prepare()
// in handle/layers.hpp for the order of all the locks).
void registry_fork_lock() noexcept;
void registry_fork_unlock() noexcept;
// In the child, under the registry lock: every binding of a thread other
// than the calling one is given back as if that thread had exited (its
// host's on_thread_exit), so a shard bound to a parent's thread is free in
// the child. See detail/fork_guard.hpp.
void registry_fork_child() noexcept;

// A nonzero token unique to the calling thread.
inline std::uint64_t thread_token() noexcept {
  if (SYDRA_UNLIKELY(thread_cache.token == 0)) thread_cache.token = new_thread_token();
  return thread_cache.token;
}

SYDRA_FAST_PATH ThreadEntry* thread_entry(std::uint64_t id, ThreadHost* host) noexcept {
  ThreadEntry& e = thread_cache.entries[id % ThreadCache::ways];
  if (SYDRA_LIKELY(e.id == id)) return &e;
  return bind_thread(id, host);
}

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
