// Audited<Heap>: a fallback layer that knows what is live. It counts live
// blocks and bytes (for the leak report a handle gives when destroyed), and in
// checked builds keeps every live block in an address-ordered registry, so
// that a double, foreign, interior, mis-sized or mis-aligned free is diagnosed
// before it can reach the heap below. GeneralPurposeHeap, the seed's default
// mode, is Audited<SystemHeap>.
#pragma once

#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/policy/system_heap.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <new>
#include <unordered_set>

namespace sydra::alloc {
inline namespace v1 {

struct LeakReport {
  std::uint64_t blocks = 0;
  std::uint64_t bytes = 0;
  friend bool operator==(const LeakReport&, const LeakReport&) = default;
};

namespace detail {
// Checked builds only: live blocks by address, plus the last freed addresses
// so that a second free can be told apart from a pointer never handed out.
class BlockRegistry {
 public:
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

 private:
  void remember_freed(const void* p) noexcept {
    try {
      freed_.push_back(reinterpret_cast<std::uintptr_t>(p));
      freed_set_.insert(reinterpret_cast<std::uintptr_t>(p));
      if (freed_.size() > recent) {
        freed_set_.erase(freed_.front());
        freed_.pop_front();
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
  std::map<std::uintptr_t, Entry> live_;
  std::deque<std::uintptr_t> freed_;
  std::unordered_set<std::uintptr_t> freed_set_;
};
struct NoRegistry {};
}  // namespace detail

template <class Heap, bool Registry = checked>
class Audited {
 public:
  using Options = typename Heap::Options;
  Audited() = default;
  explicit Audited(const Options& o) : heap_(o) {}

  void* alloc(std::size_t len, std::size_t align) noexcept {
    align = normalize_align(align);
    void* p = heap_.alloc(len, align);
    if (p == nullptr) return nullptr;
    if constexpr (Registry) {
      if (!registry_.add(p, len, align)) {
        heap_.free(p, len, align);
        return nullptr;
      }
    }
    blocks_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(len, std::memory_order_relaxed);
    return p;
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if constexpr (Registry) registry_.check(mem, len, align);
    if (!heap_.resize(mem, len, align, new_len)) return false;
    if constexpr (Registry) registry_.relocate(mem, mem, new_len);
    bytes_.fetch_add(new_len - len, std::memory_order_relaxed);  // wraps correctly when shrinking
    return true;
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if constexpr (Registry) registry_.check(mem, len, align);
    void* p = heap_.remap(mem, len, align, new_len);
    if (p == nullptr) return nullptr;
    if constexpr (Registry) registry_.relocate(mem, p, new_len);
    bytes_.fetch_add(new_len - len, std::memory_order_relaxed);
    return p;
  }
  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    align = normalize_align(align);
    if constexpr (Registry) registry_.remove(mem, len, align);
    blocks_.fetch_sub(1, std::memory_order_relaxed);
    bytes_.fetch_sub(len, std::memory_order_relaxed);
    heap_.free(mem, len, align);
  }

  LeakReport live() const noexcept {
    return {blocks_.load(std::memory_order_relaxed), bytes_.load(std::memory_order_relaxed)};
  }
  Allocator backing_allocator() noexcept { return heap_.backing_allocator(); }
  Heap& inner() noexcept { return heap_; }

 private:
  [[no_unique_address]] Heap heap_;
  [[no_unique_address]] std::conditional_t<Registry, detail::BlockRegistry, detail::NoRegistry> registry_;
  std::atomic<std::uint64_t> blocks_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

// The seed's default mode: std.heap.GeneralPurposeAllocator, in C++ terms.
using GeneralPurposeHeap = Audited<SystemHeap>;

}  // namespace v1
}  // namespace sydra::alloc
