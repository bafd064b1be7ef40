// The pagemap's flat table (any address a program may pass gives nullptr
// unless it is in a slab; the table costs RSS only where slabs live) and
// huge-page chunks (SlabPoolOptions::huge_pages: 2 MiB-aligned, advised).
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

// The /proc/self/smaps record of the mapping that holds p: its size and
// RSS in KiB and its VmFlags line; size 0 if there is none.
struct Mapping {
  std::size_t size_kib = 0, rss_kib = 0;
  std::string vm_flags;
};
Mapping mapping_of(std::uintptr_t p) {
  Mapping m;
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return m;
  char line[512];
  bool in = false;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && std::strchr(line, '-') < std::strchr(line, ' ')) {
      if (in) break;
      in = lo <= p && p < hi;
      continue;
    }
    if (!in) continue;
    if (std::strncmp(line, "Size:", 5) == 0) std::sscanf(line + 5, "%zu", &m.size_kib);
    else if (std::strncmp(line, "Rss:", 4) == 0) std::sscanf(line + 4, "%zu", &m.rss_kib);
    else if (std::strncmp(line, "VmFlags:", 8) == 0) m.vm_flags = line + 8;
  }
  std::fclose(f);
  return m;
}

TEST(Pagemap, AddressesOutsideEverySlabGiveNull) {
  Pool h(Pool::Options{.pool = {.shards = 0}});
  void* p = h.alloc(64, 8);
  ASSERT_NE(sa::Pagemap::lookup(p), nullptr);
  int local = 0;
  static int global = 0;
  const std::uintptr_t odd[] = {0,
                                1,
                                reinterpret_cast<std::uintptr_t>(&local),
                                reinterpret_cast<std::uintptr_t>(&global),
                                (std::uintptr_t{1} << 47) - 1,
                                std::uintptr_t{1} << 47,  // the first address past user space
                                (std::uintptr_t{1} << 47) + reinterpret_cast<std::uintptr_t>(p),
                                std::uintptr_t{1} << 63,  // non-canonical
                                reinterpret_cast<std::uintptr_t>(p) | (std::uintptr_t{1} << 63),
                                ~std::uintptr_t{0}};
  for (std::uintptr_t a : odd) EXPECT_EQ(sa::Pagemap::lookup(reinterpret_cast<void*>(a)), nullptr) << std::hex << a;
  h.free(p, 64, 8);
}

TEST(Pagemap, TheFlatTableCostsRssOnlyWhereSlabsLive) {
  Pool h(Pool::Options{.pool = {.shards = 0}});
  std::vector<void*> blocks;
  for (int i = 0; i < 4096; ++i) blocks.push_back(h.alloc(256, 8));  // 16 slabs
  if (!sa::Pagemap::flat()) GTEST_SKIP() << "no 16 GiB of address space here: the radix fallback serves";
  // The table's address is private: its mapping is found by its exact size.
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  ASSERT_NE(f, nullptr);
  char line[512];
  std::uintptr_t table = 0;
  while (table == 0 && std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && hi - lo == sa::Pagemap::flat_bytes) table = lo;
  }
  std::fclose(f);
  ASSERT_NE(table, 0u) << "no mapping of exactly " << sa::Pagemap::flat_bytes << " bytes";
  const Mapping m = mapping_of(table);
  EXPECT_EQ(m.size_kib, sa::Pagemap::flat_bytes >> 10);
  // 4 KiB of table per 32 MiB of address space that holds slabs: a test
  // process's chunks cover a few hundred MiB at most.
  EXPECT_LT(m.rss_kib, 1024u) << "the table's RSS";
  for (void* p : blocks) h.free(p, 256, 8);
}

bool kernel_has_thp() {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == nullptr) return false;
  std::fclose(f);
  return true;  // even "[never]" sets VM_HUGEPAGE (VmFlags hg) on madvise
}

TEST(HugePages, ChunksAre2MiBAlignedWholeHugePagesAndAdvised) {
  if (!kernel_has_thp())
    GTEST_SKIP() << "no /sys/kernel/mm/transparent_hugepage/enabled: this kernel has no THP, madvise refuses";
  // 3 MiB asked: rounded down to whole huge pages.
  Pool h(Pool::Options{.pool = {.shards = 0, .slabs = {.chunk_bytes = std::size_t{3} << 20, .huge_pages = true}}});
  void* p = h.alloc(64, 8);
  const sa::SlabMeta* m = sa::Pagemap::lookup(p);
  ASSERT_NE(m, nullptr);
  const auto base = reinterpret_cast<std::uintptr_t>(m->base);
  EXPECT_EQ(base % sa::pal::huge_page_bytes, 0u) << "a fresh pool's first slab is its first chunk's start";
  const sa::MemoryStats s = h.snapshot_stats().memory;
  EXPECT_EQ(s.reserved_bytes, sa::pal::huge_page_bytes);
  const Mapping map = mapping_of(base);
  ASSERT_NE(map.size_kib, 0u);
  EXPECT_EQ(map.size_kib % (sa::pal::huge_page_bytes >> 10), 0u);
  EXPECT_NE(map.vm_flags.find(" hg"), std::string::npos) << "VmFlags:" << map.vm_flags;
  // A single slab of the huge page can still be decommitted.
  h.free(p, 64, 8);
  EXPECT_EQ(h.trim(0), sa::slab_bytes);
}

TEST(HugePages, OffByDefault) {
  Pool h(Pool::Options{.pool = {.shards = 0}});
  void* p = h.alloc(64, 8);
  const sa::SlabMeta* m = sa::Pagemap::lookup(p);
  ASSERT_NE(m, nullptr);
  const Mapping map = mapping_of(reinterpret_cast<std::uintptr_t>(m->base));
  EXPECT_EQ(map.vm_flags.find(" hg"), std::string::npos) << "VmFlags:" << map.vm_flags;
  h.free(p, 64, 8);
}

}  // namespace
