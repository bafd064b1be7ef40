// The C library's own functions, found in the C library itself.
//
// A malloc that replaces `malloc` still needs glibc's heap for what it does
// not pool. Linking __libc_malloc, or dlsym(RTLD_NEXT, "malloc_usable_size"),
// finds whichever object exports the name first, and a process may link
// another malloc that exports it too (jemalloc: malloc_usable_size;
// tcmalloc: __libc_malloc and friends). dlopen("libc.so.6", RTLD_NOLOAD)
// would find the right object, but it allocates the first time (the
// object's search list), and the first caller is a malloc that cannot
// allocate yet. So the lookup reads libc's dynamic symbol table directly:
// dl_iterate_phdr and the GNU hash table, no allocation, no lock of ours.
#pragma once

#include <sydra/alloc/platform.hpp>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace pal {

// The address of the function `name` that the C library (the object that
// defines gnu_get_libc_version) exports at its default version, or nullptr
// when it has none. Never allocates; safe before main and inside malloc.
void* find_libc_function(const char* name) noexcept;

}  // namespace pal
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
