// sydra-alloc: the whole public API in one include.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/modes.hpp>
