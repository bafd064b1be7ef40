// Fallback layers that know what is live.
//
// Checked<Heap>: in checked builds, every live block in an address-ordered
// registry, so that a double, foreign, interior, mis-sized or mis-aligned free
// is diagnosed before it can reach the heap below.
// Audited<Heap>: Checked<Heap> plus live blocks and bytes, for the leak report
// a handle gives when destroyed. GeneralPurposeHeap, the seed's default mode,
// is Audited<SystemHeap>.
#pragma once

#include <sydra/alloc/detail/thread_counters.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/heap/system_heap.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <unordered_set>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct LeakReport {
  std::uint64_t blocks = 0;
  std::uint64_t bytes = 0;
  // More frees than allocations were counted (a double free, or a free with
  // the wrong length, in a build that does not check): the counts are then
  // floored at zero instead of wrapping around.
  bool underflow = false;
  friend bool operator==(const LeakReport&, const LeakReport&) = default;

  static LeakReport difference(std::uint64_t in, std::uint64_t out, std::uint64_t bytes_in,
                               std::uint64_t bytes_out) noexcept {
    LeakReport r;
    r.underflow = out > in || bytes_out > bytes_in;
    r.blocks = out > in ? 0 : in - out;
    r.bytes = bytes_out > bytes_in ? 0 : bytes_in - bytes_out;
    return r;
  }
  LeakReport& operator+=(const LeakReport& o) noexcept {
    blocks += o.blocks;
    bytes += o.bytes;
    underflow = underflow || o.underflow;
    return *this;
  }
};

namespace detail {
// Where the registry's containers take their nodes: operator new by default
// (their allocations are not the heap's, so they never show up in its
// counts or its out-of-memory paths), or the heap's backing allocator under
// a malloc built on the handle (malloc_override.hpp), where operator new is
// the handle itself and a node for a fallback block would re-enter the
// registry's lock.
struct OperatorNewHeap {
  void* alloc(std::size_t len, std::size_t align) noexcept {
    return ::operator new(len, std::align_val_t{align}, std::nothrow);
  }
  bool resize(void*, std::size_t, std::size_t, std::size_t) noexcept { return false; }
  void* remap(void*, std::size_t, std::size_t, std::size_t) noexcept { return nullptr; }
  void free(void* mem, std::size_t, std::size_t align) noexcept { ::operator delete(mem, std::align_val_t{align}); }
};
inline OperatorNewHeap operator_new_heap;

template <class T>
struct BackingStd {
  using value_type = T;
  Allocator backing;
  explicit BackingStd(Allocator a) noexcept : backing(a) {}
  template <class U>
  BackingStd(const BackingStd<U>& o) noexcept : backing(o.backing) {}
  T* allocate(std::size_t n) {
    T* p = backing.template alloc_array<T>(n);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept { backing.free_array(p, n); }
  template <class U>
  friend bool operator==(const BackingStd& a, const BackingStd<U>& b) noexcept {
    return a.backing == b.backing;
  }
};

// Checked builds only: live blocks by address, plus the last freed addresses
// so that a second free can be told apart from a pointer never handed out.
class BlockRegistry {
 public:
  explicit BlockRegistry(Allocator backing)
      : live_(std::less<>{}, BackingStd<std::pair<const std::uintptr_t, Entry>>(backing)),
        backing_(backing),
        freed_set_(0, std::hash<std::uintptr_t>{}, std::equal_to<>{}, BackingStd<std::uintptr_t>(backing)) {}
  void fork_lock() noexcept { mu_.lock(); }
  void fork_unlock() noexcept { mu_.unlock(); }
  bool add(void* p, std::size_t len, std::size_t align) noexcept {
    std::lock_guard g(mu_);
    try {
      live_.insert_or_assign(reinterpret_cast<std::uintptr_t>(p), Entry{len, align});
      forget_freed(p);
      return true;
    } catch (...) {
      return false;
    }
  }
  // Diagnoses and aborts unless (p, len, align) is exactly a live block.
  void check(const void* p, std::size_t len, std::size_t align) noexcept {
    std::lock_guard g(mu_);
    check_locked(p, len, align);
  }
  // Moves or resizes a live entry without allocating (a map node is reused),
  // so a block that already moved can always be recorded.
  void relocate(const void* from, void* to, std::size_t new_len) noexcept {
    std::lock_guard g(mu_);
    auto node = live_.extract(reinterpret_cast<std::uintptr_t>(from));
    if (node.empty())  // freed by another thread since check(): a racing double free
      report_misuse(Misuse::double_free, "block freed while it was being resized", from, new_len, 0);
    node.key() = reinterpret_cast<std::uintptr_t>(to);
    node.mapped().len = new_len;
    live_.insert(std::move(node));
    if (from != to) remember_freed(from);
  }
  void remove(const void* p, std::size_t len, std::size_t align) noexcept {
    std::lock_guard g(mu_);
    check_locked(p, len, align);
    live_.erase(reinterpret_cast<std::uintptr_t>(p));
    remember_freed(p);
  }
  // The length and alignment a live block was allocated with, for a remap
  // that does not know them (realloc); diagnoses and aborts for anything else.
  std::pair<std::size_t, std::size_t> claims(const void* p) noexcept {
    std::lock_guard g(mu_);
    auto it = live_.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == live_.end()) check_locked(p, 0, 0);  // diagnoses and aborts
    return {it->second.len, it->second.align};
  }
  // A free that does not know the block's length: the pointer alone must be
  // a live block's start.
  void remove_unsized(const void* p) noexcept {
    std::lock_guard g(mu_);
    auto it = live_.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == live_.end()) check_locked(p, 0, 0);  // diagnoses and aborts
    live_.erase(it);
    remember_freed(p);
  }

 private:
  void remember_freed(const void* p) noexcept {
    try {
      if (!freed_) freed_.emplace(BackingStd<std::uintptr_t>(backing_));  // a deque allocates when made
      freed_->push_back(reinterpret_cast<std::uintptr_t>(p));
      freed_set_.insert(reinterpret_cast<std::uintptr_t>(p));
      if (freed_->size() > recent) {
        freed_set_.erase(freed_->front());
        freed_->pop_front();
      }
    } catch (...) {  // the history is a diagnostic aid; losing it loses nothing
    }
  }

  struct Entry {
    std::size_t len;
    std::size_t align;
  };
  static constexpr std::size_t recent = 1 << 14;

  void check_locked(const void* p, std::size_t len, std::size_t align) noexcept {
    const auto key = reinterpret_cast<std::uintptr_t>(p);
    auto it = live_.upper_bound(key);
    if (it != live_.begin()) {
      --it;
      const Entry& e = it->second;
      if (it->first == key) {
        if (e.len != len) report_misuse(Misuse::size_mismatch, "free/resize with a length other than the block's", p, len, align);
        if (e.align != align) report_misuse(Misuse::alignment_mismatch, "free/resize with an alignment other than the block's", p, len, align);
        return;
      }
      if (key < it->first + e.len) report_misuse(Misuse::interior_pointer, "pointer into the middle of a block", p, len, align);
    }
    if (freed_set_.count(key) != 0) report_misuse(Misuse::double_free, "block already freed", p, len, align);
    report_misuse(Misuse::foreign_pointer, "pointer not allocated by this handle", p, len, align);
  }
  void forget_freed(void* p) {
    freed_set_.erase(reinterpret_cast<std::uintptr_t>(p));  // the deque entry ages out harmlessly
  }

  std::mutex mu_;
  std::map<std::uintptr_t, Entry, std::less<>, BackingStd<std::pair<const std::uintptr_t, Entry>>> live_;
  Allocator backing_;
  std::optional<std::deque<std::uintptr_t, BackingStd<std::uintptr_t>>> freed_;
  std::unordered_set<std::uintptr_t, std::hash<std::uintptr_t>, std::equal_to<>, BackingStd<std::uintptr_t>>
      freed_set_;
};
struct NoRegistry {
  explicit NoRegistry(Allocator) noexcept {}
};
}  // namespace detail

// Checked<Heap>: in checked builds, the registry above in front of a heap;
// otherwise the heap itself, at no cost.
// NodesFromBacking: the registry's own nodes come from the heap's backing
// allocator instead of operator new (see OperatorNewHeap above).
template <class Heap, bool Registry = checked, bool NodesFromBacking = false>
class Checked {
 public:
  using Options = typename Heap::Options;
  Checked() : Checked(Options{}) {}
  explicit Checked(const Options& o)
      : heap_(o),
        registry_(NodesFromBacking ? heap_.backing_allocator() : Allocator::of(detail::operator_new_heap)) {}

  void* alloc(std::size_t len, std::size_t align) noexcept {
    align = normalize_align(align);
    return registered(heap_.alloc(len, align), len, align);
  }
  void* alloc_zeroed(std::size_t len, std::size_t align) noexcept
    requires requires(Heap& h) { h.alloc_zeroed(len, align); }
  {
    align = normalize_align(align);
    return registered(heap_.alloc_zeroed(len, align), len, align);
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if constexpr (Registry) registry_.check(mem, len, align);
    if (!heap_.resize(mem, len, align, new_len)) return false;
    if constexpr (Registry) registry_.relocate(mem, mem, new_len);
    return true;
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if constexpr (Registry) registry_.check(mem, len, align);
    void* p = heap_.remap(mem, len, align, new_len);
    if constexpr (Registry) {
      if (p != nullptr) registry_.relocate(mem, p, new_len);
    }
    return p;
  }
  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    align = normalize_align(align);
    if constexpr (Registry) registry_.remove(mem, len, align);
    heap_.free(mem, len, align);
  }
  // Checked builds diagnose a pointer that is not a live block's start
  // before the heap below reads its header (a free() counts its bytes first).
  std::size_t usable_size(const void* mem) noexcept
    requires requires(Heap& h) { h.usable_size(mem); }
  {
    if constexpr (Registry) static_cast<void>(registry_.claims(mem));
    return heap_.usable_size(mem);
  }
  void free_unsized(void* mem) noexcept
    requires requires(Heap& h) { h.free_unsized(mem); }
  {
    if constexpr (Registry) registry_.remove_unsized(mem);
    heap_.free_unsized(mem);
  }
  // realloc's remap, which keeps malloc's alignment only (C's realloc does
  // not keep an over-aligned block's): checked builds verify the pointer is a
  // live block's start first.
  void* remap_unsized(void* mem, std::size_t new_len) noexcept
    requires requires(Heap& h) { h.remap_unsized(mem, new_len); }
  {
    if constexpr (Registry) static_cast<void>(registry_.claims(mem));
    void* p = heap_.remap_unsized(mem, new_len);
    if constexpr (Registry) {
      if (p != nullptr) registry_.relocate(mem, p, new_len);
    }
    return p;
  }
  Allocator backing_allocator() noexcept { return heap_.backing_allocator(); }
  Heap& inner() noexcept { return heap_; }
  void fork_lock() noexcept {
    if constexpr (Registry) registry_.fork_lock();
  }
  void fork_unlock() noexcept {
    if constexpr (Registry) registry_.fork_unlock();
  }

 private:
  // A registry that cannot record the block (out of memory) gives it back:
  // an unregistered block would be a "foreign pointer" at its free.
  void* registered(void* p, std::size_t len, std::size_t align) noexcept {
    if constexpr (Registry) {
      if (p != nullptr && !registry_.add(p, len, align)) {
        heap_.free(p, len, align);
        return nullptr;
      }
    }
    return p;
  }

  [[no_unique_address]] Heap heap_;
  [[no_unique_address]] std::conditional_t<Registry, detail::BlockRegistry, detail::NoRegistry> registry_;
};

// Live blocks and bytes, counted per thread (no counter every thread writes)
// and summed when asked: removals are read before additions, so the
// difference never goes below zero unless more was freed than allocated,
// which is then reported rather than wrapped.
class LiveCounts {
 public:
  enum : std::size_t { allocs, frees, bytes_in, bytes_out, count };
  explicit LiveCounts(Allocator backing) noexcept : c_(backing) {}
  using Block = detail::ThreadCounters<count>::Block;
  static constexpr std::size_t thread_block_bytes = sizeof(Block);
  SYDRA_FAST_PATH Block* local() noexcept { return c_.local(); }
  SYDRA_FAST_PATH void on_alloc(Block* b, std::size_t len) noexcept {
    c_.bump(b, allocs);
    c_.bump(b, bytes_in, len);
  }
  SYDRA_FAST_PATH void on_free(Block* b, std::size_t len) noexcept {
    c_.bump(b, frees);
    c_.bump(b, bytes_out, len);
  }
  // A block that changed size in place or moved: old length out, new in.
  void on_resize(std::size_t old_len, std::size_t new_len) noexcept {
    Block* b = c_.local();
    c_.bump(b, bytes_out, old_len);
    c_.bump(b, bytes_in, new_len);
  }
  LeakReport live() const noexcept {
    const auto v = c_.sum(std::array<std::size_t, 4>{frees, bytes_out, allocs, bytes_in});
    return LeakReport::difference(v[2], v[0], v[3], v[1]);
  }

 private:
  detail::ThreadCounters<count> c_;
};

// Audited<Heap>: Checked<Heap> plus live counts, for the leak report a handle
// gives when it is destroyed.
template <class Heap, bool Registry = checked>
class Audited {
 public:
  using Options = typename Heap::Options;
  Audited() : Audited(Options{}) {}
  explicit Audited(const Options& o) : heap_(o), live_(heap_.backing_allocator()) {}

  void* alloc(std::size_t len, std::size_t align) noexcept {
    void* p = heap_.alloc(len, align);
    if (p != nullptr) live_.on_alloc(live_.local(), len);
    return p;
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    if (!heap_.resize(mem, len, align, new_len)) return false;
    live_.on_resize(len, new_len);
    return true;
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    void* p = heap_.remap(mem, len, align, new_len);
    if (p != nullptr) live_.on_resize(len, new_len);
    return p;
  }
  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    heap_.free(mem, len, align);
    live_.on_free(live_.local(), len);
  }

  LeakReport live() const noexcept { return live_.live(); }
  Allocator backing_allocator() noexcept { return heap_.backing_allocator(); }
  Heap& inner() noexcept { return heap_.inner(); }
  void fork_lock() noexcept { heap_.fork_lock(); }
  void fork_unlock() noexcept { heap_.fork_unlock(); }

 private:
  Checked<Heap, Registry> heap_;
  LiveCounts live_;
};

// The seed's default mode: std.heap.GeneralPurposeAllocator, in C++ terms.
using GeneralPurposeHeap = Audited<SystemHeap>;

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
