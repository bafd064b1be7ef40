// prof/stack.hpp: _Unwind_Backtrace, and the text range of this object.
#include <sydra/alloc/prof/stack.hpp>

#include <link.h>
#include <unwind.h>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace prof {
namespace {

// The last full unwind of this thread, to be reused while the stack still
// holds it: the return address of every frame walked, and where it is stored
// (relative to capture_stack's own frame). A sample whose call site is the
// cached one, and whose stack holds the same return address in every one of
// those slots, has the same frames: each slot is written by the call that
// made the frame above it, so a different caller at any level shows there.
// The slots read lie between two addresses of this thread's stack seen by
// earlier unwinds, so the reads stay inside it. A benchmark loop (one call
// site) then pays about 40 ns per sample instead of a 1-3 us unwind.
constexpr unsigned max_checked = max_frames + 16;  // the kept frames, and the allocator's own before them
struct Cache {
  std::uintptr_t from;         // the call site it was taken at; 0: empty
  std::uintptr_t lo, hi;       // stack addresses seen: the anchors and the highest slot
  unsigned kept, checked;
  std::uintptr_t frames[max_frames];
  std::uintptr_t expect[max_checked];  // return addresses, and their slots relative to the anchor
  std::uint32_t offset[max_checked];
  std::uint64_t hits;
};
[[gnu::tls_model("initial-exec")]] constinit thread_local Cache cache{};

struct Walk {
  std::uintptr_t* out;
  unsigned max;
  unsigned n;
  std::uintptr_t from;
  TextRange own;
  bool started;
  std::uintptr_t anchor;
  Cache* fill;  // the cache to fill, or nullptr
};

_Unwind_Reason_Code step(_Unwind_Context* ctx, void* arg) {
  auto& w = *static_cast<Walk*>(arg);
  const std::uintptr_t ip = _Unwind_GetIP(ctx);
  // libgcc's context holds the return address into this frame and the CFA
  // of the frame it returns from, just above which that address is stored.
  const std::uintptr_t slot = _Unwind_GetCFA(ctx) - sizeof(std::uintptr_t);
  if (ip == 0) return _URC_END_OF_STACK;
  if (!w.started) {
    if (ip != w.from) return _URC_NO_REASON;  // still inside the profiler
    w.started = true;
  }
  if (Cache* c = w.fill) {  // where this frame's return address is, to check it next time
    if (c->checked == max_checked || slot < w.anchor || slot - w.anchor > UINT32_MAX) {
      w.fill = nullptr;
    } else {
      c->expect[c->checked] = ip;
      c->offset[c->checked++] = static_cast<std::uint32_t>(slot - w.anchor);
      if (slot + sizeof(std::uintptr_t) > c->hi) c->hi = slot + sizeof(std::uintptr_t);
    }
  }
  if (w.n == 0 && ip >= w.own.lo && ip < w.own.hi) return _URC_NO_REASON;  // the allocator's own frames
  w.out[w.n++] = ip;
  return w.n == w.max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// Reads caller frames' return-address slots: never a redzone when the stack
// is the cached one, perhaps one when it is not (then it does not match).
__attribute__((no_sanitize("address"))) bool cache_holds(const Cache& c, std::uintptr_t anchor) noexcept {
  if (anchor < c.lo || anchor + c.offset[c.checked - 1] + sizeof(std::uintptr_t) > c.hi) return false;
  for (unsigned i = 0; i < c.checked; ++i) {
    if (*reinterpret_cast<const volatile std::uintptr_t*>(anchor + c.offset[i]) != c.expect[i]) return false;
  }
  return true;
}

}  // namespace

unsigned capture_stack(std::uintptr_t* out, unsigned max, std::uintptr_t from, TextRange own) noexcept {
  const auto anchor = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  Cache& c = cache;
  if (from != 0 && c.from == from && c.kept <= max && c.checked != 0 && cache_holds(c, anchor)) {
    for (unsigned i = 0; i < c.kept; ++i) out[i] = c.frames[i];
    ++c.hits;
    return c.kept;
  }
  const std::uintptr_t lo = c.from != 0 && c.lo < anchor ? c.lo : anchor, hi = c.from != 0 && c.hi > anchor ? c.hi : anchor;
  c.from = 0;  // filled below, valid once complete
  c.checked = 0;
  c.lo = lo;
  c.hi = hi;
  Walk w{out, max, 0, from, own, from == 0, anchor, from != 0 ? &c : nullptr};
  _Unwind_Backtrace(&step, &w);
  if (!w.started) {  // `from` was not on the stack (a tail call): keep everything, cache nothing
    c.checked = 0;
    w = Walk{out, max, 0, 0, own, true, anchor, nullptr};
    _Unwind_Backtrace(&step, &w);
    return w.n;
  }
  if (w.fill != nullptr && c.checked != 0 && w.n <= max_frames) {
    c.kept = w.n;
    for (unsigned i = 0; i < w.n; ++i) c.frames[i] = out[i];
    c.from = from;
  }
  return w.n;
}

std::uint64_t cached_stacks() noexcept { return cache.hits; }

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
