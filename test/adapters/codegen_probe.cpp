// Small functions whose generated code check_codegen.py reads (objdump), to
// hold the concrete adapters to their claim: on the pooled path they make no
// indirect call (the handle's fast path is inlined), and the concrete pmr
// resource adds none to pmr's own virtual call. The controls use the erased
// forms, which must show an indirect call: if they did not, the check would
// be blind, and it fails.
//
// Built only in optimised builds (test/adapters/meson.build); the handle is
// BasicAllocatorHandle<SmallPoolPolicy>, pooled whatever the mode.
#include <sydra/alloc/modes.hpp>
#include <sydra/alloc/pmr.hpp>
#include <sydra/alloc/stl.hpp>

#include <cstdint>
#include <list>
#include <map>

namespace sa = sydra::alloc;
using Handle = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
using Concrete = sa::StlAllocator<std::uint64_t, Handle>;
using Erased = sa::StlAllocator<std::uint64_t>;

// do_allocate and do_deallocate, the targets of pmr's one virtual call, are
// emitted here so that they can be read. (Not probed: a call through the
// resource's own type. The class is final, yet GCC 12 devirtualises it only
// speculatively: the inlined fast path behind a compare of the table slot,
// with an indirect jump left in the branch that is never taken.)
template class sa::BasicMemoryResource<Handle>;
template class sa::BasicMemoryResource<sa::Allocator>;

extern "C" {

// ---- Must make no indirect call ------------------------------------------------

std::uint64_t* sydra_probe_stl_concrete_allocate(Concrete& a) { return a.allocate(4); }
void sydra_probe_stl_concrete_deallocate(Concrete& a, std::uint64_t* p) noexcept { a.deallocate(p, 4); }

// Whole container operations: a node allocated or freed inside the container.
void sydra_probe_list_push_back(std::list<int, sa::StlAllocator<int, Handle>>& l) { l.push_back(1); }
void sydra_probe_list_pop_front(std::list<int, sa::StlAllocator<int, Handle>>& l) noexcept { l.pop_front(); }

// ---- Controls: must make one ---------------------------------------------------

std::uint64_t* sydra_probe_control_stl_erased_allocate(Erased& a) { return a.allocate(4); }
void* sydra_probe_control_pmr_virtual(std::pmr::memory_resource& r) { return r.allocate(32, 8); }

}  // extern "C"
