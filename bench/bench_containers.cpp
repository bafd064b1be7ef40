// Standard containers on each allocator adapter (issue 10).
//
//   BM_Container/<Variant>/<container>
//
// Variants: Std (std::allocator, i.e. operator new: glibc here), Snmalloc
// (an allocator over snmalloc's inlined alloc/sized dealloc; only when built
// with -Dsnmalloc_src), StlErased
// (StlAllocator<T> over the handle's Allocator), StlConcrete (StlAllocator<T,
// Handle> over the handle), PmrErased (polymorphic_allocator over
// MemoryResource), PmrConcrete (polymorphic_allocator over
// BasicMemoryResource<Handle>); every sydra variant on the shared 4-shard
// small_pool handle (sydra_adapters.hpp). Containers: std::map<int, Row>,
// std::unordered_map<int, Row> and std::list<Row>, with Row two 64-bit words
// (map nodes 56 B, list and hash nodes 32 B: all pooled sizes).
//
// One iteration: a fresh container; insert kItems rows (keys from a fixed
// xorshift sequence, the same for every variant and iteration), erase every
// other one of them, insert kItems / 2 more, then destroy the container
// (its frees are timed too). One item = one insert or erase: 2 * kItems per
// iteration. CPU time.
#include "bench_common.hpp"
#include "peers.hpp"
#include "shapes.hpp"
#include "sydra_adapters.hpp"

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sydra_bench {
namespace {

constexpr std::size_t kItems = 4096;

struct Row {
  std::uint64_t a;
  std::uint64_t b;
};

struct ContainerStd {
  template <class T>
  using Alloc = std::allocator<T>;
  template <class A>
  static A make() {
    return A();
  }
};

#if SYDRA_BENCH_SNMALLOC
// What a program that hands its containers snmalloc gets: the inlined global
// allocator, with the sized free that std::allocator's deallocate makes possible.
template <class T>
struct SnmallocStl {
  using value_type = T;
  SnmallocStl() noexcept = default;
  template <class U>
  SnmallocStl(const SnmallocStl<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    void* p = Snmalloc{}.alloc(n * sizeof(T), alignof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept { Snmalloc{}.free(p, n * sizeof(T), alignof(T)); }
  template <class U>
  bool operator==(const SnmallocStl<U>&) const noexcept {
    return true;  // one global allocator: any instance frees any other's blocks
  }
};

struct ContainerSnmalloc {
  template <class T>
  using Alloc = SnmallocStl<T>;
  template <class A>
  static A make() {
    return A();
  }
};
#endif

// The keys of one iteration: kItems to insert, then kItems / 2 more.
const std::vector<int>& keys() {
  static const std::vector<int> k = [] {
    std::vector<int> v(kItems + kItems / 2);
    Xorshift64 rng(0xC0DE);
    for (int& x : v) x = static_cast<int>(rng.next() >> 33);
    return v;
  }();
  return k;
}

template <class Map>
std::size_t map_round(const typename Map::allocator_type& alloc) {
  const std::vector<int>& k = keys();
  Map m(alloc);
  for (std::size_t i = 0; i < kItems; ++i) m.emplace(k[i], Row{k[i] * 3ull, i});
  for (std::size_t i = 0; i < kItems; i += 2) m.erase(k[i]);
  for (std::size_t i = kItems; i < k.size(); ++i) m.emplace(k[i], Row{k[i] * 3ull, i});
  return m.size();
}

template <class List>
std::size_t list_round(const typename List::allocator_type& alloc) {
  List l(alloc);
  for (std::size_t i = 0; i < kItems; ++i) l.push_back(Row{i, i});
  bool odd = false;
  for (auto it = l.begin(); it != l.end(); odd = !odd) it = odd ? std::next(it) : l.erase(it);
  for (std::size_t i = 0; i < kItems / 2; ++i) l.push_back(Row{i, i});
  return l.size();
}

template <class V, class C, std::size_t (*Round)(const typename C::allocator_type&)>
void run_container(benchmark::State& state) {
  const typename C::allocator_type alloc = V::template make<typename C::allocator_type>();
  benchmark::DoNotOptimize(Round(alloc));  // warm-up outside the timing: first bind, first slabs
  for (auto _ : state) benchmark::DoNotOptimize(Round(alloc));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(2 * kItems));
}

template <class V>
void add_containers(const char* variant) {
  using Pair = std::pair<const int, Row>;
  using Map = std::map<int, Row, std::less<int>, typename V::template Alloc<Pair>>;
  using Hash = std::unordered_map<int, Row, std::hash<int>, std::equal_to<int>, typename V::template Alloc<Pair>>;
  using List = std::list<Row, typename V::template Alloc<Row>>;
  const std::string base = "BM_Container/" + std::string(variant) + "/";
  benchmark::RegisterBenchmark((base + "map").c_str(), run_container<V, Map, map_round<Map>>);
  benchmark::RegisterBenchmark((base + "unordered_map").c_str(), run_container<V, Hash, map_round<Hash>>);
  benchmark::RegisterBenchmark((base + "list").c_str(), run_container<V, List, list_round<List>>);
}

}  // namespace

void register_container_shapes(const BenchConfig&) {
  add_containers<ContainerStd>("Std");
#if SYDRA_BENCH_SNMALLOC
  add_containers<ContainerSnmalloc>("Snmalloc");
#endif
  add_containers<ContainerStlErased>("StlErased");
  add_containers<ContainerStlConcrete>("StlConcrete");
  add_containers<ContainerPmrErased>("PmrErased");
  add_containers<ContainerPmrConcrete>("PmrConcrete");
}

}  // namespace sydra_bench
