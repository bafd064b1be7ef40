// A hand-made config.hpp with a mode that does not exist: modes.hpp must
// refuse it with a static_assert.
#pragma once
#define SYDRA_ALLOC_MODE 7
#define SYDRA_ALLOC_SHARDS 4
#define SYDRA_ALLOC_CHECKED 1
#define SYDRA_ALLOC_STATS 1
#define SYDRA_ALLOC_LOCK_TIMING 1
