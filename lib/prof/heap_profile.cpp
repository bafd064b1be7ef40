// prof/heap_profile.hpp: the tables, the lock, and the gperftools writer.
#include <sydra/alloc/pal/os_memory.hpp>
#include <sydra/alloc/prof/heap_profile.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace prof {

struct HeapProfile::Stack {
  std::uint64_t hash;
  std::uint32_t depth;
  std::uintptr_t frames[max_frames];
  double counts[8];  // blocks, bytes for: live, all allocations, window, peak
};
struct HeapProfile::Block {
  std::uintptr_t ptr;  // 0: empty
  std::uint32_t stack;
  std::uint32_t size_class;
  std::size_t size;
  std::size_t align;
  std::uint32_t thread;
  double weight;
};

namespace {

constexpr std::size_t block_slots = HeapProfile::max_samples * 2;  // at most half full
constexpr std::size_t index_slots = HeapProfile::max_stacks * 2;
enum : unsigned { live_col = 0, total_col = 2, window_col = 4, peak_col = 6 };

std::size_t round_up(std::size_t n) noexcept { return (n + pal::page_bytes - 1) & ~(pal::page_bytes - 1); }

std::uint64_t hash_frames(const std::uintptr_t* frames, unsigned depth) noexcept {
  std::uint64_t h = 0x84222325CBF29CE4ull ^ depth;
  for (unsigned i = 0; i < depth; ++i) h = (h ^ frames[i]) * 0x100000001B3ull + (h >> 29);
  return h | 1;
}
std::size_t block_home(std::uintptr_t p) noexcept {
  return ((p >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(block_slots));
}

unsigned column(ProfileKind k) noexcept {
  return k == ProfileKind::live ? live_col : k == ProfileKind::window ? window_col : peak_col;
}

// The text writer: a buffer on the stack, numbers formatted by hand.
class Out {
 public:
  explicit Out(int fd) noexcept : fd_(fd) {}
  ~Out() { flush(); }
  void text(const char* s) noexcept {
    while (*s != '\0') put(*s++);
  }
  void number(std::uint64_t v, int width = 0) noexcept {
    char digits[24];
    int n = 0;
    do digits[n++] = static_cast<char>('0' + v % 10); while ((v /= 10) != 0);
    for (int i = n; i < width; ++i) put(' ');
    while (n > 0) put(digits[--n]);
  }
  void hex(std::uintptr_t v) noexcept {
    text("0x");
    char digits[20];
    int n = 0;
    do digits[n++] = "0123456789abcdef"[v & 15]; while ((v >>= 4) != 0);
    for (int i = n; i < 12; ++i) put('0');
    while (n > 0) put(digits[--n]);
  }
  // gperftools: "<blocks>: <bytes> [<blocks>: <bytes>] @"
  void counts(std::uint64_t n1, std::uint64_t s1, std::uint64_t n2, std::uint64_t s2) noexcept {
    number(n1, 6), text(": "), number(s1, 8), text(" ["), number(n2, 6), text(": "), number(s2, 8), text("] @");
  }
  void raw(const char* p, std::size_t n) noexcept {
    while (n-- > 0) put(*p++);
  }
  bool flush() noexcept {
    for (std::size_t done = 0; done < used_;) {
      const ssize_t w = ::write(fd_, buf_ + done, used_ - done);
      if (w <= 0) {
        ok_ = false;
        break;
      }
      done += static_cast<std::size_t>(w);
    }
    used_ = 0;
    return ok_;
  }
  bool ok() const noexcept { return ok_; }

 private:
  void put(char c) noexcept {
    if (used_ == sizeof buf_) flush();
    buf_[used_++] = c;
  }
  int fd_;
  std::size_t used_ = 0;
  bool ok_ = true;
  char buf_[4096];
};

// gettid() is a system call: each thread asks once. A fork's child (one
// thread, a new id) forgets the answer its parent's thread left it.
[[gnu::tls_model("initial-exec")]] constinit thread_local std::uint32_t cached_tid = 0;
std::uint32_t this_thread_id() noexcept {
  if (SYDRA_UNLIKELY(cached_tid == 0)) cached_tid = static_cast<std::uint32_t>(::gettid());
  return cached_tid;
}
void forget_thread_id() noexcept { cached_tid = 0; }

std::uint64_t whole(double x) noexcept { return x <= 0 ? 0 : static_cast<std::uint64_t>(std::llround(x)); }

}  // namespace

HeapProfile::HeapProfile(std::size_t mean_bytes) noexcept : mean_(mean_bytes) {
  for (auto& f : filter_) f.store(0, std::memory_order_relaxed);
}

HeapProfile* HeapProfile::create(std::size_t mean_bytes) noexcept {
  const std::size_t head = round_up(sizeof(HeapProfile));
  const std::size_t stacks = round_up(sizeof(Stack) * max_stacks);
  const std::size_t index = round_up(sizeof(std::uint32_t) * index_slots);
  const std::size_t blocks = round_up(sizeof(Block) * block_slots);
  char* base = static_cast<char*>(pal::reserve(head + stacks + index + blocks, pal::page_bytes));
  if (base == nullptr) return nullptr;
  static std::atomic<bool> atfork{false};
  if (!atfork.exchange(true)) ::pthread_atfork(nullptr, nullptr, &forget_thread_id);
  auto* p = ::new (base) HeapProfile(mean_bytes == 0 ? 1 : mean_bytes);
  p->stacks_ = reinterpret_cast<Stack*>(base + head);  // zero-filled by the kernel
  p->stack_index_ = reinterpret_cast<std::uint32_t*>(base + head + stacks);
  p->blocks_ = reinterpret_cast<Block*>(base + head + stacks + index);
  return p;
}

void HeapProfile::destroy(HeapProfile* p) noexcept {
  if (p == nullptr) return;
  const std::size_t bytes = round_up(sizeof(HeapProfile)) + round_up(sizeof(Stack) * max_stacks) +
                            round_up(sizeof(std::uint32_t) * index_slots) + round_up(sizeof(Block) * block_slots);
  p->~HeapProfile();
  pal::release(p, bytes);
}

void HeapProfile::lock() noexcept {
  for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire); ++spins) {
    if (spins >= 64) ::sched_yield();
  }
}
void HeapProfile::fork_lock() noexcept { lock(); }
void HeapProfile::fork_unlock() noexcept { unlock(); }

std::uint32_t HeapProfile::stack_of(const std::uintptr_t* frames, unsigned depth) noexcept {
  const std::uint64_t h = hash_frames(frames, depth);
  for (std::size_t i = h & (index_slots - 1);; i = (i + 1) & (index_slots - 1)) {
    const std::uint32_t e = stack_index_[i];
    if (e == 0) {
      if (stacks_used_ == max_stacks) return UINT32_MAX;
      Stack& s = stacks_[stacks_used_];
      s.hash = h;
      s.depth = depth;
      std::memcpy(s.frames, frames, depth * sizeof(std::uintptr_t));
      stack_index_[i] = ++stacks_used_;
      return stacks_used_ - 1;
    }
    const Stack& s = stacks_[e - 1];
    if (s.hash == h && s.depth == depth && std::memcmp(s.frames, frames, depth * sizeof(std::uintptr_t)) == 0)
      return e - 1;
  }
}

HeapProfile::Block* HeapProfile::slot_of(const void* p) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (std::size_t i = block_home(a);; i = (i + 1) & (block_slots - 1)) {
    if (blocks_[i].ptr == a || blocks_[i].ptr == 0) return &blocks_[i];
  }
}

void HeapProfile::record(void* p, const Sample& s, const std::uintptr_t* frames, unsigned depth) noexcept {
  Sample rec = s;
  rec.thread = this_thread_id();
  lock();
  const std::uint32_t st = blocks_live_ < max_samples ? stack_of(frames, depth) : UINT32_MAX;
  if (st == UINT32_MAX) {
    unlock();
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Block* b = slot_of(p);
  if (b->ptr != 0) erase(b);  // a block freed behind the profiler's back (never by the handle): replaced
  b = slot_of(p);
  *b = Block{reinterpret_cast<std::uintptr_t>(p), st, rec.size_class, rec.size, rec.align, rec.thread, rec.weight};
  ++blocks_live_;
  std::atomic<std::uint16_t>& f = filter_[filter_slot(p)];
  f.store(static_cast<std::uint16_t>(f.load(std::memory_order_relaxed) + 1), std::memory_order_relaxed);
  Stack& k = stacks_[st];
  const double bytes = rec.weight * static_cast<double>(rec.size);
  k.counts[live_col] += rec.weight, k.counts[live_col + 1] += bytes;
  k.counts[total_col] += rec.weight, k.counts[total_col + 1] += bytes;
  if (window_on_) k.counts[window_col] += rec.weight, k.counts[window_col + 1] += bytes;
  live_bytes_ += bytes;
  if (live_bytes_ > peak_bytes_ * (1.0 + 1.0 / 64)) refresh_peak();
  unlock();
  if (pending_.load(std::memory_order_relaxed) != nullptr) write_pending();
}

void HeapProfile::refresh_peak() noexcept {
  for (std::uint32_t i = 0; i < stacks_used_; ++i) {
    stacks_[i].counts[peak_col] = stacks_[i].counts[live_col];
    stacks_[i].counts[peak_col + 1] = stacks_[i].counts[live_col + 1];
  }
  peak_bytes_ = live_bytes_;
}

// Removes b's record; linear probing keeps no tombstones: the records after
// it that hashed at or before its slot move back.
void HeapProfile::erase(Block* b) noexcept {
  Stack& k = stacks_[b->stack];
  const double bytes = b->weight * static_cast<double>(b->size);
  k.counts[live_col] -= b->weight, k.counts[live_col + 1] -= bytes;
  live_bytes_ -= bytes;
  std::atomic<std::uint16_t>& f = filter_[filter_slot(reinterpret_cast<void*>(b->ptr))];
  f.store(static_cast<std::uint16_t>(f.load(std::memory_order_relaxed) - 1), std::memory_order_relaxed);
  --blocks_live_;
  std::size_t hole = static_cast<std::size_t>(b - blocks_);
  for (std::size_t i = (hole + 1) & (block_slots - 1); blocks_[i].ptr != 0; i = (i + 1) & (block_slots - 1)) {
    const std::size_t home = block_home(blocks_[i].ptr);
    if (((i - home) & (block_slots - 1)) >= ((i - hole) & (block_slots - 1))) {
      blocks_[hole] = blocks_[i];
      hole = i;
    }
  }
  blocks_[hole].ptr = 0;
}

bool HeapProfile::forget(const void* p) noexcept {
  lock();
  Block* b = slot_of(p);
  const bool found = b->ptr != 0;
  if (found) erase(b);
  unlock();
  return found;
}

bool HeapProfile::find(const void* p, Sample* out) noexcept {
  lock();
  const Block* b = slot_of(p);
  const bool found = b->ptr != 0;
  if (found && out != nullptr) *out = Sample{b->size, b->align, b->size_class, b->thread, b->weight};
  unlock();
  return found;
}

void HeapProfile::start() noexcept {
  lock();
  for (std::uint32_t i = 0; i < stacks_used_; ++i) stacks_[i].counts[window_col] = stacks_[i].counts[window_col + 1] = 0;
  window_on_ = true;
  unlock();
}
void HeapProfile::stop() noexcept {
  lock();
  window_on_ = false;
  unlock();
}

std::size_t HeapProfile::sites(ProfileKind kind, SiteRow* out, std::size_t max) noexcept {
  const unsigned c = column(kind);
  std::size_t n = 0;
  lock();
  for (std::uint32_t i = 0; i < stacks_used_; ++i) {  // insertion into the top `max`
    const Stack& s = stacks_[i];
    const double bytes = s.counts[c + 1];
    if (whole(s.counts[c]) == 0 && whole(bytes) == 0) continue;
    std::size_t at = n < max ? n++ : max;
    while (at > 0 && out[at - 1].bytes < bytes) {
      if (at < max) out[at] = out[at - 1];
      --at;
    }
    if (at < max) out[at] = SiteRow{s.frames, s.depth, s.counts[c], bytes};
  }
  unlock();
  return n;
}

ProfileTotals HeapProfile::totals(ProfileKind kind) noexcept {
  const unsigned c = column(kind);
  ProfileTotals t;
  lock();
  for (std::uint32_t i = 0; i < stacks_used_; ++i) t.blocks += stacks_[i].counts[c], t.bytes += stacks_[i].counts[c + 1];
  unlock();
  return t;
}

bool HeapProfile::write_locked(int fd, ProfileKind kind) noexcept {
  const unsigned c = column(kind);
  const unsigned a = kind == ProfileKind::live ? total_col : c;  // the bracketed pair
  std::uint64_t sum[4] = {};
  for (std::uint32_t i = 0; i < stacks_used_; ++i) {
    const double* k = stacks_[i].counts;
    sum[0] += whole(k[c]), sum[1] += whole(k[c + 1]), sum[2] += whole(k[a]), sum[3] += whole(k[a + 1]);
  }
  Out out(fd);
  out.text("heap profile: ");
  out.counts(sum[0], sum[1], sum[2], sum[3]);
  out.text(" heapprofile\n");
  for (std::uint32_t i = 0; i < stacks_used_; ++i) {
    const Stack& s = stacks_[i];
    if (whole(s.counts[c + 1]) == 0 && whole(s.counts[a + 1]) == 0) continue;
    out.counts(whole(s.counts[c]), whole(s.counts[c + 1]), whole(s.counts[a]), whole(s.counts[a + 1]));
    for (unsigned f = 0; f < s.depth; ++f) out.text(" "), out.hex(s.frames[f]);
    out.text("\n");
  }
  out.text("\nMAPPED_LIBRARIES:\n");
  const int maps = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (maps >= 0) {
    char chunk[1024];
    for (ssize_t n; (n = ::read(maps, chunk, sizeof chunk)) > 0;) out.raw(chunk, static_cast<std::size_t>(n));
    ::close(maps);
  }
  return out.flush();
}

bool HeapProfile::write(int fd, ProfileKind kind) noexcept {
  lock();
  const bool ok = write_locked(fd, kind);
  unlock();
  return ok;
}

bool HeapProfile::write_file_locked(const char* path, ProfileKind kind) noexcept {
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = write_locked(fd, kind);
  return ::close(fd) == 0 && ok;
}

bool HeapProfile::write(const char* path, ProfileKind kind) noexcept {
  lock();
  const bool ok = write_file_locked(path, kind);
  unlock();
  return ok;
}

void HeapProfile::write_soon(const char* path) noexcept {
  if (locked_.exchange(true, std::memory_order_acquire)) {  // busy (perhaps this very thread): later
    pending_.store(path, std::memory_order_relaxed);
    return;
  }
  (void)write_file_locked(path, ProfileKind::live);
  unlock();
}

void HeapProfile::write_pending() noexcept {
  if (const char* path = pending_.exchange(nullptr, std::memory_order_relaxed)) (void)write(path, ProfileKind::live);
}

}  // namespace prof
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
