// Thread bindings: each thread's state in each host, and what happens to it
// when the thread exits.
//
// The registry lock is held while an exiting thread gives its states back,
// while a host unregisters, and while a snapshot walks a host's states, so
// none of them can see a host or a state half gone.
#include <sydra/alloc/detail/thread_registry.hpp>

#include <atomic>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace sydra::alloc {
inline namespace v1 {
namespace detail {
namespace {

struct Binding {
  std::uint64_t id;
  ThreadHost* host;
  void* state;
};

struct ThreadRecord;

struct Registry {
  std::mutex mu;
  std::unordered_map<std::uint64_t, ThreadHost*> live;
  std::vector<ThreadRecord*> threads;  // every thread with a binding, for for_each_thread_state
};

Registry& registry() noexcept {
  static Registry* r = new Registry;  // never destroyed: threads may exit after static teardown
  return *r;
}

std::atomic<std::uint64_t> next_host_id{1};
std::atomic<std::uint64_t> next_thread_token{1};

struct ThreadRecord {
  std::vector<Binding> bindings;  // guarded by the registry lock
  bool listed = false;

  ~ThreadRecord() {
    // From here on this thread works without per-thread state (other
    // thread_local destructors may still run and allocate).
    thread_cache.exiting = true;
    for (ThreadEntry& e : thread_cache.entries) e = ThreadEntry{};
    Registry& r = registry();
    std::lock_guard g(r.mu);
    for (Binding& b : bindings) {
      if (r.live.count(b.id) != 0) b.host->on_thread_exit(b.state);
    }
    bindings.clear();
    if (listed) std::erase(r.threads, this);
  }
};

thread_local ThreadRecord record;

}  // namespace

std::uint64_t register_host(ThreadHost* host) noexcept {
  const std::uint64_t id = next_host_id.fetch_add(1, std::memory_order_relaxed);
  Registry& r = registry();
  std::lock_guard g(r.mu);
  try {
    r.live.emplace(id, host);
  } catch (...) {
    return 0;  // id 0 never matches an entry: the host runs without per-thread state
  }
  return id;
}

void unregister_host(std::uint64_t id, void (*give_back)(void* ctx, void* state), void* ctx) noexcept {
  if (id == 0) return;
  Registry& r = registry();
  std::lock_guard g(r.mu);
  r.live.erase(id);
  for (ThreadRecord* t : r.threads) {
    std::erase_if(t->bindings, [&](const Binding& b) {
      if (b.id != id) return false;
      if (give_back != nullptr) give_back(ctx, b.state);
      return true;
    });
  }
}

ThreadEntry* bind_thread(std::uint64_t id, ThreadHost* host) noexcept {
  if (thread_cache.exiting || id == 0) return nullptr;
  ThreadEntry& slot = thread_cache.entries[id % ThreadCache::ways];
  Registry& r = registry();
  std::unique_lock g(r.mu);
  for (Binding& b : record.bindings) {
    if (b.id == id) {
      slot = ThreadEntry{id, b.state, host->hot_of(b.state)};
      return &slot;
    }
  }
  // A new binding: first forget the ones whose host is gone, so that a
  // long-lived thread serving many short-lived handles does not grow its list.
  std::erase_if(record.bindings, [&r](const Binding& b) { return r.live.count(b.id) == 0; });
  void* state = host->make_thread_state();
  if (state == nullptr) return nullptr;
  try {
    record.bindings.push_back(Binding{id, host, state});
    if (!record.listed) {
      r.threads.push_back(&record);
      record.listed = true;
    }
  } catch (...) {
    host->on_thread_exit(state);  // give it straight back
    return nullptr;
  }
  slot = ThreadEntry{id, state, host->hot_of(state)};
  return &slot;
}

void for_each_thread_state(std::uint64_t id, unsigned passes, void (*f)(void* ctx, unsigned pass, void* state),
                           void* ctx, void (*begin)(void* ctx, unsigned pass)) noexcept {
  Registry& r = registry();
  std::lock_guard g(r.mu);
  for (unsigned pass = 0; pass < passes; ++pass) {
    if (begin != nullptr) begin(ctx, pass);
    for (ThreadRecord* t : r.threads)
      for (Binding& b : t->bindings)
        if (b.id == id) f(ctx, pass, b.state);
  }
}

std::uint64_t new_thread_token() noexcept { return next_thread_token.fetch_add(1, std::memory_order_relaxed); }

}  // namespace detail
}  // namespace v1
}  // namespace sydra::alloc
