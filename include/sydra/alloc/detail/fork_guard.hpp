// fork() at any moment, for every handle of the process.
//
// A child of a multi-threaded process has one thread: a lock that another
// thread held at the fork stays held in it forever, and what another thread
// owned (its shard, its shard's heads, a list of slabs it was decommitting) has
// no one to give it back. So every handle with a lock registers here when it
// is built, and one set of pthread_atfork handlers, installed with the first
// registration, does for all of them what jemalloc does for its arenas:
//   prepare  the thread registry's lock, then each handle's locks, newest
//            handle first (a handle may allocate from an older one, never the
//            other way round), each in the order its own paths nest them;
//   parent   releases them all;
//   child    releases each handle's locks and repairs what a thread that is
//            gone left half done (fork_child() in handle/layers.hpp), then
//            gives back every binding of the threads the child does not have,
//            as if they had exited, then lets each handle release what such a
//            thread held outside any binding (fork_settle()), and releases
//            the registry's lock.
// Nothing here allocates: the table is static.
#pragma once

#include <sydra/alloc/platform.hpp>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

struct ForkHooks {
  void (*prepare)(void* ctx) noexcept;
  void (*parent)(void* ctx) noexcept;
  void (*child)(void* ctx) noexcept;
  void (*settle)(void* ctx) noexcept;  // the child, after the departed threads' exits
};

// False when the table (4,096 handles) is full: that handle is then not
// protected across fork, which its owner learns from the return value only.
bool fork_register(void* ctx, const ForkHooks* hooks) noexcept;
void fork_unregister(void* ctx) noexcept;

// For tests: how many handles are registered.
unsigned fork_registered() noexcept;

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
