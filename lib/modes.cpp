// Explicit instantiations of the three modes' handles and the configured one, declared extern in
// modes.hpp, so that every consumer does not compile them again.
#include <sydra/alloc/modes.hpp>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template class detail::HandleLayers<DefaultPolicy>;
template class detail::HandleLayers<MimallocPolicy>;
template class detail::HandleLayers<SmallPoolPolicy>;
template class detail::HandleLayers<ConfiguredPolicy>;
template class BasicAllocatorHandle<DefaultPolicy>;
template class BasicAllocatorHandle<MimallocPolicy>;
template class BasicAllocatorHandle<SmallPoolPolicy>;
template class BasicAllocatorHandle<ConfiguredPolicy>;

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
