// pal/percpu.hpp: what the fast sequences need to know once.
#include <sydra/alloc/pal/percpu.hpp>

#include <sched.h>
#include <unistd.h>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace pal {

unsigned possible_cpus() noexcept {
  static const unsigned n = [] {
    const long conf = ::sysconf(_SC_NPROCESSORS_CONF);
    return conf > 0 ? static_cast<unsigned>(conf) : 1u;
  }();
  return n;
}

bool rseq_registered() noexcept {
#if SYDRA_ALLOC_RSEQ
  return __rseq_size != 0 && current_cpu() >= 0;
#else
  return false;
#endif
}

bool run_on_each_cpu(void (*f)(void* ctx, unsigned cpu), void* ctx) noexcept {
  cpu_set_t saved;
  CPU_ZERO(&saved);
  if (::sched_getaffinity(0, sizeof saved, &saved) != 0) return false;
  for (unsigned cpu = 0; cpu < CPU_SETSIZE && cpu < possible_cpus(); ++cpu) {
    if (!CPU_ISSET(cpu, &saved)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0) continue;
    f(ctx, cpu);
  }
  ::sched_setaffinity(0, sizeof saved, &saved);
  return true;
}

}  // namespace pal
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
