// detail/fork_guard.hpp: the process's handles across fork().
#include <sydra/alloc/detail/fork_guard.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/slab/idle_return.hpp>

#include <pthread.h>

#include <mutex>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {
namespace {

struct Client {
  void* ctx;
  const ForkHooks* hooks;
};

struct Table {
  static constexpr unsigned capacity = 4096;
  std::mutex mu;
  Client clients[capacity];  // in registration order
  unsigned count = 0;
  bool installed = false;
};

constinit Table table_storage{};  // trivially destructible: a fork may follow static teardown
Table& table() noexcept { return table_storage; }

// The table's lock is taken first and held across the fork, so no handle
// registers or goes away meanwhile; then the thread registry's, as every
// thread-exit and snapshot path takes it before a handle's locks; the idle
// list's last (a leaf: nothing is taken under it).
void prepare() noexcept {
  Table& t = table();
  t.mu.lock();
  registry_fork_lock();
  for (unsigned i = t.count; i-- > 0;) t.clients[i].hooks->prepare(t.clients[i].ctx);
  idle_fork_lock();
}
void parent() noexcept {
  Table& t = table();
  idle_fork_unlock();
  for (unsigned i = 0; i < t.count; ++i) t.clients[i].hooks->parent(t.clients[i].ctx);
  registry_fork_unlock();
  t.mu.unlock();
}
void child() noexcept {
  Table& t = table();
  idle_fork_child();
  for (unsigned i = 0; i < t.count; ++i) t.clients[i].hooks->child(t.clients[i].ctx);
  registry_fork_child();  // with the registry lock still held, as at a thread's exit
  for (unsigned i = 0; i < t.count; ++i) t.clients[i].hooks->settle(t.clients[i].ctx);
  registry_fork_unlock();
  t.mu.unlock();
}

}  // namespace

bool fork_register(void* ctx, const ForkHooks* hooks) noexcept {
  Table& t = table();
  std::lock_guard g(t.mu);
  if (!t.installed) t.installed = ::pthread_atfork(&prepare, &parent, &child) == 0;
  if (!t.installed || t.count == Table::capacity) return false;
  t.clients[t.count++] = Client{ctx, hooks};
  return true;
}

void fork_unregister(void* ctx) noexcept {
  Table& t = table();
  std::lock_guard g(t.mu);
  for (unsigned i = 0; i < t.count; ++i) {
    if (t.clients[i].ctx == ctx) {
      for (unsigned j = i + 1; j < t.count; ++j) t.clients[j - 1] = t.clients[j];  // keeps the order
      --t.count;
      return;
    }
  }
}

unsigned fork_registered() noexcept {
  Table& t = table();
  std::lock_guard g(t.mu);
  return t.count;
}

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
