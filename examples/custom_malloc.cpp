// A malloc of one's own policy: the whole source of libcustom-malloc.so.
//
// The policy pools 16 B..2 KiB in 29 classes (four steps per doubling, where
// the default table stops at 256 B), gives 8 threads a shard of their own and
// keeps stats. MallocPolicy<> swaps its fallback for glibc's own heap
// (__libc_malloc and friends), which a malloc needs: a fallback that called
// malloc would call this library again.
//
// Built by examples/meson.build and run in CI under LD_PRELOAD:
//   LD_PRELOAD=build/examples/libcustom-malloc.so SYDRA_ALLOC_STATS=1 python3 -c 'print(1)'
#include <sydra/alloc/malloc_override.hpp>
#include <sydra/alloc/policy/bucket.hpp>
#include <sydra/alloc/policy/shard.hpp>

namespace {

namespace sa = sydra::alloc;

struct WideClassesPolicy {
  static constexpr const char* name = "wide-classes";
  static constexpr sa::SizeClassSpec classes{.min = 16, .steps_per_doubling = 4, .max = 2048};
  using Shards = sa::ThreadShards<sa::ShardFeatures{.count = 8, .epochs = false, .stats = true}>;
  using Buckets = sa::MutexBuckets<sa::PlainLock<>, sa::BucketFeatures{.stats = true}>;
  using Fallback = sa::SystemHeap;  // replaced by MallocPolicy
};

}  // namespace

SYDRA_ALLOC_DEFINE_MALLOC(sa::MallocPolicy<WideClassesPolicy>);
