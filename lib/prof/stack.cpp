// prof/stack.hpp: _Unwind_Backtrace, and the text range of this object.
#include <sydra/alloc/prof/stack.hpp>

#include <link.h>
#include <unwind.h>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace prof {
namespace {

struct Walk {
  std::uintptr_t* out;
  unsigned max;
  unsigned n;
  std::uintptr_t from;
  TextRange own;
  bool started;
};

_Unwind_Reason_Code step(_Unwind_Context* ctx, void* arg) {
  auto& w = *static_cast<Walk*>(arg);
  const std::uintptr_t ip = _Unwind_GetIP(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  if (!w.started) {
    if (ip != w.from) return _URC_NO_REASON;  // still inside the profiler
    w.started = true;
  }
  if (w.n == 0 && ip >= w.own.lo && ip < w.own.hi) return _URC_NO_REASON;  // the allocator's own frames
  w.out[w.n++] = ip;
  return w.n == w.max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

}  // namespace

unsigned capture_stack(std::uintptr_t* out, unsigned max, std::uintptr_t from, TextRange own) noexcept {
  Walk w{out, max, 0, from, own, from == 0};
  _Unwind_Backtrace(&step, &w);
  if (!w.started) {  // `from` was not on the stack (a tail call): keep everything
    w.started = true;
    w.from = 0;
    _Unwind_Backtrace(&step, &w);
  }
  return w.n;
}

void prime_unwinder() noexcept {
  std::uintptr_t frames[4];
  (void)capture_stack(frames, 4, 0, {});
}

TextRange own_text() noexcept {
  struct Find {
    std::uintptr_t addr;
    TextRange range;
  } f{reinterpret_cast<std::uintptr_t>(&own_text), {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto& f = *static_cast<Find*>(arg);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
          const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          if (f.addr >= lo && f.addr < lo + ph.p_memsz) {
            f.range = {lo, lo + ph.p_memsz};
            return 1;
          }
        }
        return 0;
      },
      &f);
  return f.range;
}

}  // namespace prof
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
