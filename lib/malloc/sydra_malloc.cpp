// libsydra-malloc.so: the C allocation API and every operator new/delete over
// the configured mode's policy (its shards, buckets and size classes), with
// glibc's own heap (__libc_*) as the fallback: see malloc_override.hpp and
// docs/malloc.md.
#include <sydra/alloc/malloc_override.hpp>
#include <sydra/alloc/modes.hpp>

SYDRA_ALLOC_DEFINE_MALLOC(sydra::alloc::MallocPolicy<sydra::alloc::ConfiguredPolicy>);
