// Per-CPU stacks of block pointers, operated on with Linux restartable
// sequences (rseq), as tcmalloc's per-CPU caches are.
//
// glibc 2.35+ registers an rseq area for every thread; the kernel keeps its
// cpu_id current and, if a thread is preempted, migrated or signalled inside
// a critical section, restarts it at its abort handler. A critical section
// here ends in ONE committing store, so it either happened whole or not at
// all, and no two threads are ever inside one for the same CPU's stack. That
// makes a per-CPU stack as cheap as a thread-owned one, with no atomic
// read-modify-write, while the memory it caches is bounded by the number of
// CPUs instead of the number of threads.
//
// Layout of one CPU's stack (CpuStack), at base + cpu * stride:
//   +0   word    a detail::CountAndPops: blocks held, counted pops (allocations)
//   +8   frees   counted pushes (frees)
//   +16  capacity
//   +24  slots[capacity]
// A counted push adds 1 to both words in one 16-byte store; a counted pop
// adds CountAndPops::pop_delta to `word` (count - 1, pops + 1). Refills and
// flushes move blocks without counting them as allocations or frees. The
// sequences below encode this layout (they read the count as the word's low
// 16 bits, with movzwl): the static_asserts after CpuStack hold it to that.
//
// Where rseq is not compiled in (not x86-64 Linux with glibc 2.35, or a TSan
// build: TSan cannot see the kernel's restarts) or not registered at run time
// (glibc.pthread.rseq=0, Valgrind, a sandbox), every operation answers
// `no_cpu`, and the caller takes its documented locked path instead.
#pragma once

#include <sydra/alloc/detail/count_and_pops.hpp>
#include <sydra/alloc/platform.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && defined(__linux__) && !SYDRA_ALLOC_TSAN && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && !defined(SYDRA_ALLOC_NO_RSEQ)
#include <sys/rseq.h>
#define SYDRA_ALLOC_RSEQ 1
#else
#define SYDRA_ALLOC_RSEQ 0
#endif

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace pal {

struct CpuStack {
  detail::CountAndPopsWord word;
  std::atomic<std::uint64_t> frees;
  std::uint32_t capacity;
  std::uint32_t reserved;
  // slots follow

  static constexpr std::size_t max_capacity = detail::CountAndPops::max_count;
  static constexpr std::size_t bytes_for(std::size_t capacity) noexcept { return 24 + 8 * capacity; }

  void** slots() noexcept { return reinterpret_cast<void**>(reinterpret_cast<char*>(this) + 24); }
  std::uint32_t count() const noexcept { return word.load(std::memory_order_relaxed).count(); }
  std::uint64_t pops() const noexcept { return word.load(std::memory_order_acquire).pops(); }
};
static_assert(sizeof(CpuStack) == 24, "the rseq sequences hard-code this layout");
static_assert(offsetof(CpuStack, word) == 0 && offsetof(CpuStack, frees) == 8 && offsetof(CpuStack, capacity) == 16,
              "the rseq sequences hard-code this layout");
static_assert(detail::CountAndPops::count_bits == 16, "the rseq sequences read the count with movzwl");

// Results of a pop: a block pointer, or one of these (never a valid block).
inline constexpr std::uintptr_t pop_empty = 0;
inline constexpr std::uintptr_t pop_no_cpu = 1;
// Results of a push.
enum class Push : int { full = 0, done = 1, no_cpu = 2 };

// The number of CPU ids the kernel may report (possible CPUs, not online ones).
unsigned possible_cpus() noexcept;

// True when this build has rseq and the calling thread's area is registered.
bool rseq_registered() noexcept;

// Runs f(ctx, cpu) once on each CPU this thread may run on, moving the thread
// there first (sched_setaffinity), then restores its affinity. For draining
// per-CPU caches: while a thread runs on a CPU, its rseq sequences are the
// only ones touching that CPU's stacks. A CPU the thread cannot move to is
// skipped. Returns false if the affinity could not be read (nothing ran).
bool run_on_each_cpu(void (*f)(void* ctx, unsigned cpu), void* ctx) noexcept;

#if SYDRA_ALLOC_RSEQ

SYDRA_FAST_PATH char* rseq_area() noexcept {
  return static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
}

// The shared opening of every sequence: publish the descriptor (3:), then
// read cpu_id and find this CPU's stack in %rax; an id out of range (the area
// unregistered, -1 or -2, or a CPU the caller has no stack for) jumps to 5:.
// The abort handler (4:) sits behind the signature the kernel checks and
// simply starts again from 0:.
#define SYDRA_RSEQ_PROLOGUE                     \
  ".pushsection __rseq_cs, \"aw?\"\n\t"          \
  ".balign 32\n\t"                               \
  "3:\n\t"                                       \
  ".long 0, 0\n\t"                               \
  ".quad 1f, (2f - 1f), 4f\n\t"                  \
  ".popsection\n\t"                              \
  ".pushsection __rseq_failure, \"ax?\"\n\t"     \
  ".byte 0x0f, 0xb9, 0x3d\n\t"                   \
  ".long 0x53053053\n\t"                         \
  "4:\n\t"                                       \
  "jmp 0f\n\t"                                   \
  ".popsection\n\t"                              \
  "0:\n\t"                                       \
  "leaq 3b(%%rip), %%rax\n\t"                    \
  "movq %%rax, 8(%[rs])\n\t"                     \
  "1:\n\t"                                       \
  "movl 4(%[rs]), %%eax\n\t"                     \
  "cmpl %[ncpu], %%eax\n\t"                      \
  "jae 5f\n\t"                                   \
  "imulq %[stride], %%rax\n\t"                   \
  "addq %[base], %%rax\n\t"

// The end of a push: 2: committed (1), 5: no CPU stack (2), 6: full (0).
#define SYDRA_RSEQ_PUSH_RESULT \
  "2:\n\t"                    \
  "movl $1, %[res]\n\t"       \
  "jmp 7f\n\t"                \
  "5:\n\t"                    \
  "movl $2, %[res]\n\t"       \
  "jmp 7f\n\t"                \
  "6:\n\t"                    \
  "xorl %[res], %[res]\n\t"   \
  "7:\n\t"

// Pops the top block. counted = true is an allocation (pops + 1); false is a
// flush that moves the block elsewhere.
template <bool Counted>
SYDRA_FAST_PATH std::uintptr_t cpu_pop(char* base, std::size_t stride, std::uint32_t ncpu) noexcept {
  std::uintptr_t result;
  asm volatile(SYDRA_RSEQ_PROLOGUE
               "movq (%%rax), %%rcx\n\t"
               "movzwl %%cx, %%edx\n\t"
               "testl %%edx, %%edx\n\t"
               "jz 6f\n\t"
               "movq 16(%%rax,%%rdx,8), %[res]\n\t"
               "addq %[delta], %%rcx\n\t"
               "movq %%rcx, (%%rax)\n\t"  // commit
               "2:\n\t"
               "jmp 7f\n\t"
               "5:\n\t"
               "movl $1, %k[res]\n\t"
               "jmp 7f\n\t"
               "6:\n\t"
               "xorl %k[res], %k[res]\n\t"
               "7:\n\t"
               : [res] "=&r"(result)
               : [rs] "r"(rseq_area()), [base] "r"(base), [stride] "r"(stride), [ncpu] "r"(ncpu),
                 [delta] "i"(Counted ? static_cast<std::int64_t>(detail::CountAndPops::pop_delta) : std::int64_t{-1})
               : "rax", "rcx", "rdx", "memory", "cc");
  return result;
}

// Pushes a block. Counted = true is a free: `word` and `frees` both grow by
// one in a single 16-byte store. False is a refill (count only).
template <bool Counted>
SYDRA_FAST_PATH Push cpu_push(char* base, std::size_t stride, std::uint32_t ncpu, void* p) noexcept {
  int result;
  if constexpr (Counted) {
    // The two words are read with 8-byte loads and written with one 16-byte
    // store: a 16-byte load right after a pop's 8-byte store to `word` could
    // not be forwarded from it and would stall.
    asm volatile(SYDRA_RSEQ_PROLOGUE
                 "movq (%%rax), %%rcx\n\t"
                 "movzwl %%cx, %%edx\n\t"
                 "cmpl 16(%%rax), %%edx\n\t"
                 "jae 6f\n\t"
                 "movq %[p], 24(%%rax,%%rdx,8)\n\t"
                 "movq 8(%%rax), %%rdx\n\t"
                 "addq $1, %%rcx\n\t"
                 "addq $1, %%rdx\n\t"
                 "movq %%rcx, %%xmm0\n\t"
                 "movq %%rdx, %%xmm1\n\t"
                 "punpcklqdq %%xmm1, %%xmm0\n\t"
                 "movdqu %%xmm0, (%%rax)\n\t"  // commit: count + 1, frees + 1
                 SYDRA_RSEQ_PUSH_RESULT
                 : [res] "=&r"(result)
                 : [rs] "r"(rseq_area()), [base] "r"(base), [stride] "r"(stride), [ncpu] "r"(ncpu), [p] "r"(p)
                 : "rax", "rcx", "rdx", "xmm0", "xmm1", "memory", "cc");
  } else {
    asm volatile(SYDRA_RSEQ_PROLOGUE
                 "movq (%%rax), %%rcx\n\t"
                 "movzwl %%cx, %%edx\n\t"
                 "cmpl 16(%%rax), %%edx\n\t"
                 "jae 6f\n\t"
                 "movq %[p], 24(%%rax,%%rdx,8)\n\t"
                 "addq $1, %%rcx\n\t"
                 "movq %%rcx, (%%rax)\n\t"  // commit: count + 1
                 SYDRA_RSEQ_PUSH_RESULT
                 : [res] "=&r"(result)
                 : [rs] "r"(rseq_area()), [base] "r"(base), [stride] "r"(stride), [ncpu] "r"(ncpu), [p] "r"(p)
                 : "rax", "rcx", "rdx", "memory", "cc");
  }
  return static_cast<Push>(result);
}

#undef SYDRA_RSEQ_PROLOGUE
#undef SYDRA_RSEQ_PUSH_RESULT

// The CPU this thread runs on, or -1 without rseq (a hint: it may change at once).
inline int current_cpu() noexcept {
  return static_cast<int>(reinterpret_cast<const volatile std::uint32_t*>(rseq_area())[1]);
}

#else  // no rseq in this build: every sequence reports no_cpu

template <bool Counted>
inline std::uintptr_t cpu_pop(char*, std::size_t, std::uint32_t) noexcept {
  return pop_no_cpu;
}
template <bool Counted>
inline Push cpu_push(char*, std::size_t, std::uint32_t, void*) noexcept {
  return Push::no_cpu;
}
inline int current_cpu() noexcept { return -1; }

#endif

}  // namespace pal
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
