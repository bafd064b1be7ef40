// Idle return: a pool's empty slabs beyond its retain budget go back to the
// OS even when nobody calls into that pool's handle again.
//
// A pool whose retained slabs exceed its budget records when its oldest
// surplus slab is due (emptied_at + decommit_delay_ms) in its IdleClient and
// folds that time into one process-wide "earliest due" time. Polls run where
// a call is already slow: every handle's refills and collect_garbage() (via
// SlabPool::tick()), fallback allocations and frees, out-of-memory retries,
// the exit of any thread bound to any handle, and the opt-in background
// thread (jemalloc's background_thread is the model). A poll with nothing
// pending is one relaxed load; with something pending but not yet due, one
// coarse clock read more. The allocation and free fast paths carry no poll at all.
//
// Locks: the registry's mutex guards the list of clients and the background
// thread's bookkeeping only. It is a leaf: nothing else is taken under it,
// and the decommits themselves run after it is released (a client being
// polled is pinned by its in_run count, which its unregistration waits out).
//
// Header-only, so that every copy of the library (libsydra-malloc.so keeps its
// own, hidden) has its own registry, as it has its own pagemap.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

struct IdleClient {
  using RunFn = void (*)(void* ctx, std::uint64_t now_ms) noexcept;
  RunFn run = nullptr;  // decommits what is due at now_ms, and notes what will be due later
  void* ctx = nullptr;
  std::uint32_t background_ms = 0;       // > 0: wants the background thread, waking at least this often
  std::atomic<std::uint64_t> due_ms{0};  // when its oldest surplus slab is due; 0: nothing pending
  std::atomic<std::uint32_t> in_run{0};  // pollers inside run(): unregistration waits for none
  IdleClient* prev = nullptr;            // the registry's list, under its mutex
  IdleClient* next = nullptr;
};

inline constexpr std::uint64_t idle_never = ~std::uint64_t{0};

struct IdleRegistry {
  std::mutex mu;
  IdleClient* head = nullptr;
  std::atomic<std::uint64_t> earliest{idle_never};  // min of the clients' due_ms (a lower bound)
  // The background thread: one per process, running while any client wants it.
  unsigned bg_users = 0;
  pid_t bg_pid = 0;  // the process it runs in: a fork's child has no such thread
  pthread_t bg_thread{};
  std::atomic<std::uint64_t> bg_gen{0};        // a thread runs while the generation is its own
  std::atomic<std::uint32_t> bg_interval_ms{0};  // the smallest interval any user asked for
  pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t sleep_cv = PTHREAD_COND_INITIALIZER;
};

// constinit and trivially destructible: pools may come and go before main and
// after static destructors (a malloc built on a handle).
inline constinit IdleRegistry idle_registry{};

// The coarse clock: delays are hundreds of milliseconds, and a poll with a
// slab pending reads it on every slow path (churn with a few blocks per slab
// empties slabs often). CLOCK_MONOTONIC costs 20+ ns through the vDSO on
// this project's hosts; the coarse one, a tick behind at most, about 5.
inline std::uint64_t idle_now_ms() noexcept {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  const auto ms = static_cast<std::uint64_t>(t.tv_sec) * 1000 + static_cast<std::uint64_t>(t.tv_nsec) / 1000000;
  return ms + 1;  // never 0: 0 means "nothing pending"
}

inline void idle_fold_earliest(std::uint64_t due) noexcept {
  IdleRegistry& r = idle_registry;
  std::uint64_t e = r.earliest.load();
  while (due < e && !r.earliest.compare_exchange_weak(e, due)) {
  }
}

// The client has surplus slabs due at `due` (keeps the earlier of two). Only
// atomics: callers may hold a pool's or a bucket's lock.
inline void idle_note_due(IdleClient& c, std::uint64_t due) noexcept {
  if (due == 0) due = 1;
  std::uint64_t cur = c.due_ms.load();
  while ((cur == 0 || due < cur) && !c.due_ms.compare_exchange_weak(cur, due)) {
  }
  idle_fold_earliest(due);
}

// Runs every client whose due time has come. `wait`: block on the registry's
// mutex (the background thread); otherwise a poll that finds it busy leaves
// the work to the poller holding it.
SYDRA_SLOW_PATH inline void idle_run_due(std::uint64_t now, bool wait) noexcept {
  IdleRegistry& r = idle_registry;
  constexpr unsigned max_batch = 32;
  IdleClient* due[max_batch];
  unsigned n = 0;
  {
    std::unique_lock g(r.mu, std::defer_lock);
    if (wait) g.lock();
    else if (!g.try_lock()) return;
    // Reset first, then fold in every client still pending: a note racing
    // with this walk either is seen below or folds itself in after the reset.
    r.earliest.store(idle_never);
    for (IdleClient* c = r.head; c != nullptr; c = c->next) {
      const std::uint64_t d = c->due_ms.load();
      if (d == 0) continue;
      if (d <= now && n < max_batch) {
        c->due_ms.exchange(0);  // a racing note can only have made it earlier: due as well
        c->in_run.fetch_add(1);
        due[n++] = c;
      } else {
        idle_fold_earliest(d);
      }
    }
  }
  for (unsigned i = 0; i < n; ++i) {
    due[i]->run(due[i]->ctx, now);  // notes its remaining surplus, if any, again
    due[i]->in_run.fetch_sub(1, std::memory_order_release);
  }
}

// Out of line: the callers (fallback allocations among them) stay free of
// the clock read and of run()'s indirect call.
SYDRA_SLOW_PATH inline void idle_poll_pending(std::uint64_t earliest) noexcept {
  const std::uint64_t now = idle_now_ms();
  if (now < earliest) return;
  idle_run_due(now, false);
}

// The poll every slow path makes. Nothing pending: one relaxed load.
inline void idle_poll() noexcept {
  const std::uint64_t e = idle_registry.earliest.load(std::memory_order_relaxed);
  if (SYDRA_LIKELY(e == idle_never)) return;
  idle_poll_pending(e);
}

inline void* idle_background_main(void* arg) noexcept {
  IdleRegistry& r = idle_registry;
  const auto gen = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(arg));
  for (;;) {
    pthread_mutex_lock(&r.sleep_mu);
    if (r.bg_gen.load() != gen) {  // read under sleep_mu: a stop signals under it, so no wake is missed
      pthread_mutex_unlock(&r.sleep_mu);
      return nullptr;
    }
    timespec until{};
    clock_gettime(CLOCK_REALTIME, &until);
    const std::uint64_t ns = std::uint64_t{r.bg_interval_ms.load()} * 1000000u + static_cast<std::uint64_t>(until.tv_nsec);
    until.tv_sec += static_cast<time_t>(ns / 1000000000u);
    until.tv_nsec = static_cast<long>(ns % 1000000000u);
    pthread_cond_timedwait(&r.sleep_cv, &r.sleep_mu, &until);
    const bool stop = r.bg_gen.load() != gen;
    pthread_mutex_unlock(&r.sleep_mu);
    if (stop) return nullptr;
    idle_run_due(idle_now_ms(), true);
  }
}

// The thread blocks every signal: a program's handlers should not run on a
// thread it did not make. Started outside the registry's lock (pthread_create
// may call malloc, which may be a handle's). If it cannot be started, the
// option falls back to the polls.
inline void idle_start_background(IdleRegistry& r, std::uint64_t gen) noexcept {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  const bool ok =
      pthread_create(&t, nullptr, &idle_background_main, reinterpret_cast<void*>(static_cast<std::uintptr_t>(gen))) == 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  std::lock_guard g(r.mu);
  if (ok) r.bg_thread = t;
  else if (r.bg_gen.load() == gen) r.bg_pid = 0;  // not started: the next user tries again
}

inline void idle_register(IdleClient& c) noexcept {
  IdleRegistry& r = idle_registry;
  std::uint64_t start_gen = 0;
  {
    std::lock_guard g(r.mu);
    c.prev = nullptr;
    c.next = r.head;
    if (r.head != nullptr) r.head->prev = &c;
    r.head = &c;
    if (c.background_ms == 0) return;
    const std::uint32_t cur = r.bg_interval_ms.load();
    if (cur == 0 || c.background_ms < cur) r.bg_interval_ms.store(c.background_ms);
    ++r.bg_users;
    if (r.bg_pid != ::getpid()) {  // none yet, or only the parent's (before a fork): this one starts it
      start_gen = r.bg_gen.fetch_add(1) + 1;
      r.bg_pid = ::getpid();
    }
  }
  if (start_gen != 0) idle_start_background(r, start_gen);
}

// Returns once no poller is inside the client's run(); after it, nothing in
// the registry refers to the client.
inline void idle_unregister(IdleClient& c) noexcept {
  IdleRegistry& r = idle_registry;
  bool join = false;
  pthread_t t{};
  {
    std::lock_guard g(r.mu);
    if (c.prev != nullptr) c.prev->next = c.next;
    else r.head = c.next;
    if (c.next != nullptr) c.next->prev = c.prev;
    c.prev = c.next = nullptr;
    if (c.background_ms != 0 && r.bg_users != 0) {
      std::uint32_t smallest = 0;  // the remaining users' interval
      for (IdleClient* o = r.head; o != nullptr; o = o->next)
        if (o->background_ms != 0 && (smallest == 0 || o->background_ms < smallest)) smallest = o->background_ms;
      r.bg_interval_ms.store(smallest);
      if (--r.bg_users == 0) {
        join = r.bg_pid == ::getpid();
        t = r.bg_thread;
        r.bg_pid = 0;
        pthread_mutex_lock(&r.sleep_mu);
        r.bg_gen.fetch_add(1);
        pthread_cond_broadcast(&r.sleep_cv);
        pthread_mutex_unlock(&r.sleep_mu);
      }
    }
  }
  while (c.in_run.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  if (join) pthread_join(t, nullptr);
}

// fork() (detail/fork_guard.hpp): a leaf lock, so its place in the order is
// free. In the child, where the pollers and the background thread are gone:
// no client is inside run() any more, the sleep lock may have been held by
// the background thread, and the lock is released.
inline void idle_fork_lock() noexcept { idle_registry.mu.lock(); }
inline void idle_fork_unlock() noexcept { idle_registry.mu.unlock(); }
inline void idle_fork_child() noexcept {
  IdleRegistry& r = idle_registry;
  for (IdleClient* c = r.head; c != nullptr; c = c->next) c->in_run.store(0);
  r.sleep_mu = PTHREAD_MUTEX_INITIALIZER;
  r.sleep_cv = PTHREAD_COND_INITIALIZER;
  r.mu.unlock();
}

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
