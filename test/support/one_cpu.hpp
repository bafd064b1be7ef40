// Keeps the calling thread on one CPU for a scope. Tests that count what a
// per-CPU cache holds need it: a thread that migrates mid-test leaves blocks
// in another CPU's cache, where its later allocations cannot see them.
#pragma once

#include <sched.h>

namespace sydra::alloc::test {

class OneCpu {
 public:
  OneCpu() noexcept {
    CPU_ZERO(&saved_);
    if (::sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &saved_)) continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pinned_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
      return;
    }
  }
  ~OneCpu() {
    if (pinned_) ::sched_setaffinity(0, sizeof saved_, &saved_);
  }
  OneCpu(const OneCpu&) = delete;
  OneCpu& operator=(const OneCpu&) = delete;

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

}  // namespace sydra::alloc::test
