// Defines an engine function that takes the configured handle.
#include <sydra/alloc/modes.hpp>

void engine_attach(sydra::alloc::AllocatorHandle* handle) { (void)handle; }
