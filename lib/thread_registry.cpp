// Thread bindings: each thread's state in each host, and what happens to it
// when the thread exits.
//
// Nothing here allocates: the registry, each thread's record and the list of
// threads live in static and thread-local storage, and the exit hook is a
// pthread key destructor (a C++ thread_local destructor would make glibc
// allocate when it is registered). That keeps the registry usable inside a
// malloc that sydra-alloc itself provides.
//
// The registry lock is held while an exiting thread gives its states back,
// while a host unregisters, and while a snapshot walks a host's states, so
// none of them can see a host or a state half gone.
#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/slab/idle_return.hpp>

#include <pthread.h>

#include <atomic>
#include <mutex>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {
namespace {

struct Binding {
  std::uint64_t id;
  ThreadHost* host;
  void* state;
};

struct ThreadRecord {
  static constexpr unsigned capacity = 32;  // hosts a thread can be bound to at once
  Binding bindings[capacity];
  unsigned count;
  ThreadRecord* prev;
  ThreadRecord* next;
  bool listed;  // on the registry's list of threads (and the exit hook is armed)
};

struct HostEntry {
  std::uint64_t id;
  ThreadHost* host;
};

struct Registry {
  std::mutex mu;
  ThreadRecord* threads = nullptr;  // every thread with a binding
  // Live hosts: a small open table; a thread's binding is valid only while
  // its host's id is here.
  static constexpr unsigned max_hosts = 4096;
  HostEntry hosts[max_hosts];
  unsigned host_count = 0;
  pthread_key_t key{};
  bool key_ok = false;
  bool key_tried = false;

  bool live(std::uint64_t id) const noexcept {
    for (unsigned i = 0; i < host_count; ++i)
      if (hosts[i].id == id) return true;
    return false;
  }
};

constinit Registry registry_storage{};  // trivially destructible: threads may exit after static teardown
Registry& registry() noexcept { return registry_storage; }

constinit std::atomic<std::uint64_t> next_host_id{1};
constinit std::atomic<std::uint64_t> next_thread_token{1};

constinit thread_local ThreadRecord record{};

void unlist(Registry& r, ThreadRecord& t) noexcept {
  if (!t.listed) return;
  if (t.prev != nullptr) t.prev->next = t.next;
  else r.threads = t.next;
  if (t.next != nullptr) t.next->prev = t.prev;
  t.prev = t.next = nullptr;
  t.listed = false;
}

// The pthread key's destructor: runs when the thread exits, after its C++
// thread_local destructors (which may still allocate through its bindings).
void on_thread_exit(void* rec) noexcept {
  auto* t = static_cast<ThreadRecord*>(rec);
  // From here on this thread works without per-thread state (later
  // destructors may still allocate).
  thread_cache.exiting = true;
  for (ThreadEntry& e : thread_cache.entries) e = ThreadEntry{};
  Registry& r = registry();
  {
    std::lock_guard g(r.mu);
    for (unsigned i = 0; i < t->count; ++i) {
      Binding& b = t->bindings[i];
      if (r.live(b.id)) b.host->on_thread_exit(b.state);
    }
    t->count = 0;
    unlist(r, *t);
  }
  // A thread exit is one of the moments an idle pool's surplus goes back
  // (slab/idle_return.hpp): outside the registry lock, as decommits run
  // under no lock.
  idle_poll();
}

// Under the lock: puts this thread on the list and arms its exit hook.
bool list_this_thread(Registry& r) noexcept {
  if (record.listed) return true;
  if (!r.key_tried) {
    r.key_tried = true;
    r.key_ok = ::pthread_key_create(&r.key, [](void* rec) { on_thread_exit(rec); }) == 0;
  }
  if (!r.key_ok || ::pthread_setspecific(r.key, &record) != 0) return false;
  record.prev = nullptr;
  record.next = r.threads;
  if (r.threads != nullptr) r.threads->prev = &record;
  r.threads = &record;
  record.listed = true;
  return true;
}

}  // namespace

std::uint64_t register_host(ThreadHost* host) noexcept {
  Registry& r = registry();
  std::lock_guard g(r.mu);
  if (r.host_count == Registry::max_hosts) return 0;  // id 0 never matches: the host runs without per-thread state
  const std::uint64_t id = next_host_id.fetch_add(1, std::memory_order_relaxed);
  r.hosts[r.host_count++] = HostEntry{id, host};
  return id;
}

void unregister_host(std::uint64_t id, void (*give_back)(void* ctx, void* state), void* ctx) noexcept {
  if (id == 0) return;
  Registry& r = registry();
  std::lock_guard g(r.mu);
  for (unsigned i = 0; i < r.host_count; ++i) {
    if (r.hosts[i].id == id) {
      r.hosts[i] = r.hosts[--r.host_count];
      break;
    }
  }
  for (ThreadRecord* t = r.threads; t != nullptr; t = t->next) {
    unsigned kept = 0;
    for (unsigned i = 0; i < t->count; ++i) {
      Binding& b = t->bindings[i];
      if (b.id == id) {
        if (give_back != nullptr) give_back(ctx, b.state);
      } else {
        t->bindings[kept++] = b;
      }
    }
    t->count = kept;
  }
  ThreadEntry& mine = thread_cache.entries[id % ThreadCache::ways];
  if (mine.id == id) mine = ThreadEntry{};
}

ThreadEntry* bind_thread(std::uint64_t id, ThreadHost* host) noexcept {
  if (thread_cache.exiting || id == 0) return nullptr;
  ThreadEntry& slot = thread_cache.entries[id % ThreadCache::ways];
  Registry& r = registry();
  std::unique_lock g(r.mu);
  if (!r.live(id)) return nullptr;  // a host being torn down binds no one
  for (unsigned i = 0; i < record.count; ++i) {
    Binding& b = record.bindings[i];
    if (b.id == id) {
      slot = ThreadEntry{id, b.state, host->hot_of(b.state)};
      return &slot;
    }
  }
  if (!list_this_thread(r)) return nullptr;
  if (record.count == ThreadRecord::capacity) {
    // Full: forget the bindings whose host is gone (a long-lived thread
    // serving many short-lived handles), then try again.
    unsigned kept = 0;
    for (unsigned i = 0; i < record.count; ++i)
      if (r.live(record.bindings[i].id)) record.bindings[kept++] = record.bindings[i];
    record.count = kept;
    if (record.count == ThreadRecord::capacity) return nullptr;
  }
  void* state = host->make_thread_state();
  if (state == nullptr) return nullptr;
  record.bindings[record.count++] = Binding{id, host, state};
  slot = ThreadEntry{id, state, host->hot_of(state)};
  return &slot;
}

void for_each_thread_state(std::uint64_t id, unsigned passes, void (*f)(void* ctx, unsigned pass, void* state),
                           void* ctx, void (*begin)(void* ctx, unsigned pass)) noexcept {
  Registry& r = registry();
  std::lock_guard g(r.mu);
  for (unsigned pass = 0; pass < passes; ++pass) {
    if (begin != nullptr) begin(ctx, pass);
    for (ThreadRecord* t = r.threads; t != nullptr; t = t->next)
      for (unsigned i = 0; i < t->count; ++i)
        if (t->bindings[i].id == id) f(ctx, pass, t->bindings[i].state);
  }
}

std::uint64_t new_thread_token() noexcept { return next_thread_token.fetch_add(1, std::memory_order_relaxed); }

void registry_fork_lock() noexcept { registry().mu.lock(); }
void registry_fork_unlock() noexcept { registry().mu.unlock(); }

void registry_fork_child() noexcept {
  Registry& r = registry();
  for (ThreadRecord* t = r.threads; t != nullptr;) {
    ThreadRecord* next = t->next;
    if (t != &record) {  // a thread of the parent's: its record is a copy in this process's memory
      for (unsigned i = 0; i < t->count; ++i) {
        Binding& b = t->bindings[i];
        if (r.live(b.id)) b.host->on_thread_exit(b.state);
      }
      t->count = 0;
      unlist(r, *t);
    }
    t = next;
  }
}

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
