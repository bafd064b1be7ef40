// The STL and pmr adapters in both forms (stl.hpp, pmr.hpp, heap_ref.hpp),
// compiled once per mode (test/adapters/meson.build):
//
//   StlErased     StlAllocator<T> over handle.allocator()
//   StlConcrete   StlAllocator<T, Handle> over the handle itself
//   PmrErased     polymorphic_allocator over MemoryResource(handle.allocator())
//   PmrConcrete   polymorphic_allocator over BasicMemoryResource<Handle>(handle)
//
// each over the mode's AllocatorHandle, and the concrete forms also over
// BasicAllocatorHandle<SmallPoolPolicy> (pooled in every mode's build). For
// std::vector, std::map, std::unordered_map, std::basic_string and std::list:
// fill, check, copy, copy-assign, move-assign and swap across two handles
// (where the propagation choice decides which handle a container ends on),
// then destroy everything and check that both handles are back to no live
// blocks. A block freed through the wrong handle would show there (and a
// pooled one aborts on the spot: "block belongs to another handle").
#include <sydra/alloc.hpp>
#include <sydra/alloc/pmr.hpp>
#include <sydra/alloc/stl.hpp>

#include "../support/failing_heap.hpp"
#include "../support/live.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory_resource>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sa = sydra::alloc;

// Both forms instantiate whole, as a library that pins them in one object
// file would do it.
template class sa::StlAllocator<int>;
template class sa::StlAllocator<int, sa::AllocatorHandle>;
template class sa::BasicMemoryResource<sa::Allocator>;
template class sa::BasicMemoryResource<sa::AllocatorHandle>;

namespace {

using PoolHandle = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

// ---- The four ways to reach a handle ------------------------------------------
// A Kind names the container allocator for a value type (Alloc<T>) and a
// Source, which makes those allocators and lives as long as the containers
// (the pmr resources must). `propagates` is the adapter's documented choice.

template <class H, const char* Name>
struct StlErased {
  using Handle = H;
  static constexpr const char* name = Name;
  static constexpr bool propagates = true;
  template <class T>
  using Alloc = sa::StlAllocator<T>;
  class Source {
   public:
    explicit Source(H& h) : a_(h.allocator()) {}
    template <class A>
    A make() const {
      return A(a_);
    }

   private:
    sa::Allocator a_;
  };
};

template <class H, const char* Name>
struct StlConcrete {
  using Handle = H;
  static constexpr const char* name = Name;
  static constexpr bool propagates = true;
  template <class T>
  using Alloc = sa::StlAllocator<T, H>;
  class Source {
   public:
    explicit Source(H& h) : h_(&h) {}
    template <class A>
    A make() const {
      return A(*h_);
    }

   private:
    H* h_;
  };
};

template <class H, class Resource, const char* Name>
struct Pmr {
  using Handle = H;
  static constexpr const char* name = Name;
  static constexpr bool propagates = false;  // polymorphic_allocator's, fixed by the standard
  template <class T>
  using Alloc = std::pmr::polymorphic_allocator<T>;
  class Source {
   public:
    explicit Source(H& h) : r_(arg(h)) {}
    Source(const Source&) = delete;  // containers point at r_
    Source& operator=(const Source&) = delete;
    template <class A>
    A make() {
      return A(&r_);
    }

   private:
    static auto arg(H& h) {
      if constexpr (Resource::erased) {
        return h.allocator();
      } else {
        return std::ref(h);
      }
    }
    Resource r_;
  };
};

constexpr char kStlErased[] = "StlErased";
constexpr char kStlConcrete[] = "StlConcrete";
constexpr char kPmrErased[] = "PmrErased";
constexpr char kPmrConcrete[] = "PmrConcrete";
constexpr char kStlConcretePool[] = "StlConcreteOverSmallPool";
constexpr char kPmrConcretePool[] = "PmrConcreteOverSmallPool";

using Kinds = ::testing::Types<
    StlErased<sa::AllocatorHandle, kStlErased>, StlConcrete<sa::AllocatorHandle, kStlConcrete>,
    Pmr<sa::AllocatorHandle, sa::MemoryResource, kPmrErased>,
    Pmr<sa::AllocatorHandle, sa::BasicMemoryResource<sa::AllocatorHandle>, kPmrConcrete>,
    StlConcrete<PoolHandle, kStlConcretePool>, Pmr<PoolHandle, sa::BasicMemoryResource<PoolHandle>, kPmrConcretePool>>;

struct KindNames {
  template <class K>
  static std::string GetName(int) {
    return K::name;
  }
};

// ---- The five containers ------------------------------------------------------
// Each Ops fills a container from a seed, checks it against the same seed,
// and names one block the container allocated.

std::uint64_t value(int seed, int i) { return static_cast<std::uint64_t>(seed) * 1000003u + static_cast<std::uint64_t>(i) * 7u; }

struct VecOps {
  template <class K>
  using C = std::vector<std::uint64_t, typename K::template Alloc<std::uint64_t>>;
  static constexpr int small = 8;  // 64 B: a pooled size
  static void fill(auto& c, int seed, int n) {
    for (int i = 0; i < n; ++i) c.push_back(value(seed, i));
  }
  static void check(const auto& c, int seed, int n) {
    ASSERT_EQ(c.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ(c[static_cast<std::size_t>(i)], value(seed, i)) << i;
  }
  static const void* block(const auto& c) { return c.data(); }
};

struct MapOps {
  template <class K>
  using C = std::map<int, std::uint64_t, std::less<int>,
                     typename K::template Alloc<std::pair<const int, std::uint64_t>>>;
  static constexpr int small = 8;
  static void fill(auto& c, int seed, int n) {
    for (int i = n - 1; i >= 0; --i) c.emplace(i, value(seed, i));  // reversed: the tree must reorder
  }
  static void check(const auto& c, int seed, int n) {
    ASSERT_EQ(c.size(), static_cast<std::size_t>(n));
    int i = 0;
    for (const auto& [k, v] : c) {
      ASSERT_EQ(k, i);
      ASSERT_EQ(v, value(seed, i));
      ++i;
    }
  }
  static const void* block(const auto& c) { return &*c.begin(); }  // inside a tree node
};

struct UnorderedMapOps {
  template <class K>
  using C = std::unordered_map<int, std::uint64_t, std::hash<int>, std::equal_to<int>,
                               typename K::template Alloc<std::pair<const int, std::uint64_t>>>;
  static constexpr int small = 8;
  static void fill(auto& c, int seed, int n) {
    for (int i = 0; i < n; ++i) c.emplace(i, value(seed, i));
  }
  static void check(const auto& c, int seed, int n) {
    ASSERT_EQ(c.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      auto it = c.find(i);
      ASSERT_NE(it, c.end()) << i;
      ASSERT_EQ(it->second, value(seed, i));
    }
  }
  static const void* block(const auto& c) { return &*c.begin(); }  // inside a node
};

struct StringOps {
  template <class K>
  using C = std::basic_string<char, std::char_traits<char>, typename K::template Alloc<char>>;
  static constexpr int small = 40;  // past the 15 chars of the SSO buffer; a pooled size
  static char ch(int seed, int i) { return static_cast<char>('a' + (seed * 7 + i) % 26); }
  static void fill(auto& c, int seed, int n) {
    for (int i = 0; i < n; ++i) c.push_back(ch(seed, i));
  }
  static void check(const auto& c, int seed, int n) {
    ASSERT_EQ(c.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ(c[static_cast<std::size_t>(i)], ch(seed, i)) << i;
  }
  static const void* block(const auto& c) { return c.data(); }  // on the heap: every test string is > 15 chars
};

struct ListOps {
  template <class K>
  using C = std::list<std::uint64_t, typename K::template Alloc<std::uint64_t>>;
  static constexpr int small = 8;
  static void fill(auto& c, int seed, int n) {
    for (int i = 0; i < n; ++i) c.push_back(value(seed, i));
  }
  static void check(const auto& c, int seed, int n) {
    ASSERT_EQ(c.size(), static_cast<std::size_t>(n));
    int i = 0;
    for (std::uint64_t v : c) ASSERT_EQ(v, value(seed, i++));
  }
  static const void* block(const auto& c) { return &*c.begin(); }  // inside a list node
};

// Small blocks of a pooled handle come from its slabs; a handle without
// pools (default, mimalloc) has none.
template <class H>
void expect_pooled_if_the_handle_pools(const void* p) {
  if constexpr (H::pooled) {
    EXPECT_NE(sa::Pagemap::lookup(p), nullptr) << "a small block of a pooled handle did not come from a slab";
  } else {
    EXPECT_EQ(sa::Pagemap::lookup(p), nullptr);
  }
}

template <class K, class Ops>
void exercise() {
  using H = typename K::Handle;
  using C = typename Ops::template C<K>;
  using A = typename C::allocator_type;
  constexpr int n = 1000;
  constexpr int n2 = 300;
  H h1;
  H h2;  // a second handle: propagation decides which one a container ends on
  {
    typename K::Source s1(h1);
    typename K::Source s2(h2);
    const A a1 = s1.template make<A>();
    const A a2 = s2.template make<A>();
    ASSERT_NE(a1, a2);

    C a(a1);
    Ops::fill(a, 1, n);
    Ops::check(a, 1, n);
    EXPECT_EQ(a.get_allocator(), a1);
    if constexpr (H::counts_live) {
      EXPECT_GT(sa::test::live(h1).blocks, 0u) << "the container did not use the handle";
    }
    EXPECT_LIVE(h2, 0, 0);

    {  // Small blocks: served by the pools of a pooled handle.
      C small(a1);
      Ops::fill(small, 9, Ops::small);
      Ops::check(small, 9, Ops::small);
      expect_pooled_if_the_handle_pools<H>(Ops::block(small));
    }

    {  // Copy construction: StlAllocator keeps the source's heap; pmr takes the default resource.
      C copy(a);
      Ops::check(copy, 1, n);
      if constexpr (K::propagates) {
        EXPECT_EQ(copy.get_allocator(), a1);
      } else {
        EXPECT_EQ(copy.get_allocator().resource(), std::pmr::get_default_resource());
        C placed(a, a1);  // pmr: a copy on the handle must say so
        Ops::check(placed, 1, n);
        EXPECT_EQ(placed.get_allocator(), a1);
      }
    }

    C b(a2);
    Ops::fill(b, 2, n2);

    {  // Copy assignment across handles.
      C c(a1);
      Ops::fill(c, 3, n);
      c = b;
      Ops::check(c, 2, n2);
      EXPECT_EQ(c.get_allocator(), K::propagates ? a2 : a1);
      Ops::fill(c, 3, 10);  // and it keeps allocating from the handle it ended on
    }

    {  // Move assignment across handles: the StlAllocator takes the buffer and the
       // allocator (O(1)); pmr moves element by element and stays on its handle.
      C src(a2);
      Ops::fill(src, 4, n);
      const void* moved = Ops::block(src);
      C dst(a1);
      Ops::fill(dst, 5, n / 2);
      dst = std::move(src);
      Ops::check(dst, 4, n);
      if constexpr (K::propagates) {
        EXPECT_EQ(dst.get_allocator(), a2);
        EXPECT_EQ(Ops::block(dst), moved);
      } else {
        EXPECT_EQ(dst.get_allocator(), a1);
        EXPECT_NE(Ops::block(dst), moved);
      }
      src = C(a1);  // a moved-from container is reusable
      Ops::fill(src, 6, 10);
      Ops::check(src, 6, 10);
    }

    {  // Swap: propagating allocators swap with the contents, between any two
       // handles. pmr's do not, and swapping across resources is undefined, so
       // pmr swaps on one handle.
      C x(a1);
      Ops::fill(x, 6, n);
      C y(K::propagates ? a2 : a1);
      Ops::fill(y, 7, n / 2);
      const A ax = x.get_allocator();
      const A ay = y.get_allocator();
      using std::swap;
      swap(x, y);
      Ops::check(x, 7, n / 2);
      Ops::check(y, 6, n);
      EXPECT_EQ(x.get_allocator(), ay);
      EXPECT_EQ(y.get_allocator(), ax);
    }

    {  // Move construction always takes the allocator.
      C m(std::move(b));
      Ops::check(m, 2, n2);
      EXPECT_EQ(m.get_allocator(), a2);
    }
  }
  // Every block went back to the handle it came from.
  EXPECT_LIVE(h1, 0, 0);
  EXPECT_LIVE(h2, 0, 0);
}

template <class K>
class AdapterContainers : public ::testing::Test {};
TYPED_TEST_SUITE(AdapterContainers, Kinds, KindNames);

TYPED_TEST(AdapterContainers, Vector) { exercise<TypeParam, VecOps>(); }
TYPED_TEST(AdapterContainers, Map) { exercise<TypeParam, MapOps>(); }
TYPED_TEST(AdapterContainers, UnorderedMap) { exercise<TypeParam, UnorderedMapOps>(); }
TYPED_TEST(AdapterContainers, String) { exercise<TypeParam, StringOps>(); }
TYPED_TEST(AdapterContainers, List) { exercise<TypeParam, ListOps>(); }

// ---- The adapters themselves --------------------------------------------------

using ModeHandle = sa::AllocatorHandle;
using Erased = sa::StlAllocator<int>;
using Concrete = sa::StlAllocator<int, ModeHandle>;

// The documented choices, as the containers see them.
template <class A>
constexpr bool propagates_everything() {
  using Tr = std::allocator_traits<A>;
  return Tr::propagate_on_container_copy_assignment::value && Tr::propagate_on_container_move_assignment::value &&
         Tr::propagate_on_container_swap::value && !Tr::is_always_equal::value;
}
static_assert(propagates_everything<Erased>());
static_assert(propagates_everything<Concrete>());
static_assert(propagates_everything<sa::StlAllocator<int, PoolHandle>>());
static_assert(std::is_same_v<std::allocator_traits<Concrete>::rebind_alloc<long>, sa::StlAllocator<long, ModeHandle>>);
static_assert(std::is_same_v<std::allocator_traits<Erased>::rebind_alloc<long>, sa::StlAllocator<long>>);
static_assert(sizeof(Concrete) == sizeof(void*), "the concrete form is one pointer");
static_assert(sizeof(Erased) == sizeof(sa::Allocator), "the erased form is the Allocator");
// Rebinding is implicit within a form; concrete to erased is explicit (it
// costs the inline fast path); erased to concrete does not exist.
static_assert(std::is_convertible_v<sa::StlAllocator<long, ModeHandle>, Concrete>);
static_assert(std::is_constructible_v<Erased, Concrete> && !std::is_convertible_v<Concrete, Erased>);
static_assert(!std::is_constructible_v<Concrete, Erased>);
static_assert(!std::is_constructible_v<sa::StlAllocator<int, PoolHandle>, Concrete>);  // another handle type
static_assert(!std::is_default_constructible_v<Concrete> && !std::is_default_constructible_v<Erased>);
static_assert(std::is_nothrow_copy_constructible_v<Concrete> && std::is_nothrow_move_assignable_v<Concrete>);
// With POCMA true, moving a vector is noexcept whatever the handles.
static_assert(std::is_nothrow_move_assignable_v<std::vector<int, Concrete>>);
static_assert(std::is_nothrow_move_assignable_v<std::vector<int, Erased>>);
static_assert(!Concrete::erased && Erased::erased && sa::MemoryResource::erased &&
              !sa::BasicMemoryResource<ModeHandle>::erased);
static_assert(std::is_base_of_v<std::pmr::memory_resource, sa::BasicMemoryResource<ModeHandle>>);

TEST(StlAdapter, EqualityMeansTheSameHeap) {
  ModeHandle h1;
  ModeHandle h2;
  PoolHandle p;
  const Concrete c1(h1);
  const sa::StlAllocator<long, ModeHandle> c1_long(c1);  // rebound: still h1
  EXPECT_EQ(c1, c1_long);
  EXPECT_EQ(&c1_long.handle(), &h1);
  EXPECT_EQ(c1, Concrete(h1));
  EXPECT_NE(c1, Concrete(h2));
  // Across forms: equal iff the Allocator is the handle's.
  EXPECT_EQ(c1, Erased(h1.allocator()));
  EXPECT_EQ(Erased(h1.allocator()), c1);
  EXPECT_EQ(sa::StlAllocator<char>(h1.allocator()), c1);  // and across value types
  EXPECT_NE(c1, Erased(h2.allocator()));
  EXPECT_EQ(Erased(c1), Erased(h1.allocator()));  // the explicit conversion keeps the heap
  EXPECT_EQ(Erased(c1).allocator(), h1.allocator());
  EXPECT_EQ(c1.allocator(), h1.allocator());
  // Concrete adapters over different handle types never are.
  EXPECT_NE(c1, (sa::StlAllocator<int, PoolHandle>(p)));
}

TEST(StlAdapter, EqualAdaptersFreeEachOthersBlocks) {
  ModeHandle h;
  PoolHandle p;
  for (std::size_t n : {1u, 10u, 100u, 10000u}) {  // pooled and fallback sizes
    Concrete c(h);
    Erased e(h.allocator());
    int* x = c.allocate(n);
    int* y = e.allocate(n);
    e.deallocate(x, n);
    c.deallocate(y, n);
    sa::StlAllocator<int, PoolHandle> pc(p);
    sa::StlAllocator<long> pe(pc);  // converted and rebound
    long* z = pe.allocate(n);
    sa::StlAllocator<long, PoolHandle>(pc).deallocate(z, n);
  }
  EXPECT_LIVE(h, 0, 0);
  EXPECT_LIVE(p, 0, 0);
}

TEST(StlAdapter, ZeroCountIsAUniqueBlock) {
  ModeHandle h;
  PoolHandle p;
  Concrete c(h);
  Erased e(h.allocator());
  sa::StlAllocator<int, PoolHandle> pc(p);
  int* a = c.allocate(0);
  int* b = e.allocate(0);
  int* d = pc.allocate(0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  EXPECT_NE(d, nullptr);
  EXPECT_NE(a, b);
  EXPECT_NE(sa::Pagemap::lookup(d), nullptr);  // one int, from a slab
  c.deallocate(a, 0);
  e.deallocate(b, 0);
  pc.deallocate(d, 0);
  EXPECT_LIVE(h, 0, 0);
  EXPECT_LIVE(p, 0, 0);
}

TEST(StlAdapter, OverAlignedElementsKeepTheirAlignment) {
  struct alignas(64) Line {
    char bytes[64];
  };
  ModeHandle h;
  sa::StlAllocator<Line, ModeHandle> c(h);
  sa::StlAllocator<Line> e(h.allocator());
  for (std::size_t n : {1u, 3u, 100u}) {
    Line* x = c.allocate(n);
    Line* y = e.allocate(n);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(x) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(y) % 64, 0u);
    c.deallocate(x, n);
    e.deallocate(y, n);
  }
  EXPECT_LIVE(h, 0, 0);
}

TEST(StlAdapter, TooLargeACountThrowsBadArrayNewLength) {
  ModeHandle h;
  Concrete c(h);
  Erased e(h.allocator());
  const std::size_t too_many = sa::max_request / sizeof(int) + 1;
  EXPECT_THROW((void)c.allocate(too_many), std::bad_array_new_length);
  EXPECT_THROW((void)e.allocate(too_many), std::bad_array_new_length);
  EXPECT_THROW((void)c.allocate(std::size_t{0} - 1), std::bad_alloc);
  EXPECT_LIVE(h, 0, 0);
}

using FailingPool = sa::BasicAllocatorHandle<sa::test::FailingSmallPool>;

TEST(StlAdapter, OutOfMemoryThrowsBadAllocInBothForms) {
  sa::test::FailPlan plan;
  FailingPool h(FailingPool::Options{.pool = {.shards = 0}, .fallback = {.plan = &plan}});
  {
    std::vector<int, sa::StlAllocator<int, FailingPool>> v{sa::StlAllocator<int, FailingPool>(h)};
    std::vector<int, sa::StlAllocator<int>> w{sa::StlAllocator<int>(h.allocator())};
    v.assign(1000, 7);  // 4000 B: the fallback, which the plan makes fail
    w.assign(1000, 8);
    plan.exhausted = true;
    EXPECT_THROW(v.resize(100000), std::bad_alloc);
    EXPECT_THROW(w.resize(100000), std::bad_alloc);
    EXPECT_EQ(v.size(), 1000u);  // strong guarantee: the old contents stand
    EXPECT_EQ(v[999], 7);
    EXPECT_EQ(w[999], 8);
    sa::BasicMemoryResource<FailingPool> r(h);
    EXPECT_THROW((void)r.allocate(100000, 8), std::bad_alloc);
    plan.exhausted = false;
  }
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// ---- pmr ----------------------------------------------------------------------

TEST(PmrAdapter, EqualityMeansTheSameHeap) {
  ModeHandle h1;
  ModeHandle h2;
  PoolHandle p;
  sa::BasicMemoryResource<ModeHandle> c1(h1);
  sa::BasicMemoryResource<ModeHandle> c1b(h1);
  sa::BasicMemoryResource<ModeHandle> c2(h2);
  sa::MemoryResource e1(h1.allocator());
  sa::MemoryResource e2(h2.allocator());
  sa::BasicMemoryResource<PoolHandle> pc(p);
  EXPECT_TRUE(c1.is_equal(c1));
  EXPECT_TRUE(c1.is_equal(c1b));
  EXPECT_FALSE(c1.is_equal(c2));
  EXPECT_TRUE(c1.is_equal(e1));  // across forms, both ways
  EXPECT_TRUE(e1.is_equal(c1));
  EXPECT_FALSE(c1.is_equal(e2));
  EXPECT_FALSE(e2.is_equal(c1));
  EXPECT_FALSE(c1.is_equal(pc));
  EXPECT_FALSE(c1.is_equal(*std::pmr::new_delete_resource()));
  EXPECT_FALSE(std::pmr::new_delete_resource()->is_equal(c1));
  EXPECT_EQ(&c1.handle(), &h1);
  EXPECT_EQ(c1.allocator(), h1.allocator());
  EXPECT_EQ(e1.allocator(), h1.allocator());
  // polymorphic_allocator compares through is_equal.
  EXPECT_EQ(std::pmr::polymorphic_allocator<int>(&c1), std::pmr::polymorphic_allocator<int>(&e1));
}

TEST(PmrAdapter, ZeroBytesAlignmentAndFailures) {
  ModeHandle h;
  PoolHandle p;
  sa::BasicMemoryResource<ModeHandle> c(h);
  sa::MemoryResource e(h.allocator());
  sa::BasicMemoryResource<PoolHandle> pc(p);
  for (std::pmr::memory_resource* r : {static_cast<std::pmr::memory_resource*>(&c),
                                       static_cast<std::pmr::memory_resource*>(&e),
                                       static_cast<std::pmr::memory_resource*>(&pc)}) {
    void* z1 = r->allocate(0, 8);  // unique, non-null
    void* z2 = r->allocate(0, 8);
    EXPECT_NE(z1, nullptr);
    EXPECT_NE(z1, z2);
    for (std::size_t align : {1u, 16u, 64u, 4096u}) {
      void* q = r->allocate(100, align);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q) % align, 0u) << align;
      r->deallocate(q, 100, align);
    }
    volatile std::size_t odd_align = 24;  // volatile: the compilers would warn about a constant
    EXPECT_THROW((void)r->allocate(64, odd_align), std::bad_alloc);  // not a power of two
    volatile std::size_t too_big = sa::max_request + 1;  // volatile: GCC would warn about a constant
    EXPECT_THROW((void)r->allocate(too_big, 8), std::bad_alloc);
    r->deallocate(z2, 0, 8);
    r->deallocate(z1, 0, 8);
  }
  void* small = pc.allocate(48, 8);
  EXPECT_NE(sa::Pagemap::lookup(small), nullptr);  // the concrete resource reaches the pools
  pc.deallocate(small, 48, 8);
  EXPECT_LIVE(h, 0, 0);
  EXPECT_LIVE(p, 0, 0);
}

// pmr's scoped model: the map's strings are built on the map's resource.
TEST(PmrAdapter, NestedContainersUseTheResource) {
  ModeHandle h;
  {
    sa::BasicMemoryResource<ModeHandle> r(h);
    std::pmr::map<int, std::pmr::string> m(&r);
    for (int i = 0; i < 100; ++i) m.emplace(i, std::string(40, static_cast<char>('a' + i % 26)));
    for (const auto& [k, s] : m) {
      EXPECT_EQ(s.get_allocator().resource(), &r);
      EXPECT_EQ(std::string_view(s), std::string(40, static_cast<char>('a' + k % 26)));
    }
    EXPECT_LIVE_BLOCKS(h, 200u);  // 100 nodes and 100 strings
  }
  EXPECT_LIVE(h, 0, 0);
}

// The StlAllocator counterpart: nested containers take the allocator
// explicitly (or through std::scoped_allocator_adaptor), here the concrete form.
TEST(StlAdapter, NestedContainersOnOneHandle) {
  ModeHandle h;
  {
    using Str = std::basic_string<char, std::char_traits<char>, sa::StlAllocator<char, ModeHandle>>;
    using Map = std::map<int, Str, std::less<int>, sa::StlAllocator<std::pair<const int, Str>, ModeHandle>>;
    const sa::StlAllocator<char, ModeHandle> a(h);
    Map m{typename Map::allocator_type(a)};
    for (int i = 0; i < 100; ++i) m.emplace(i, Str(40, static_cast<char>('a' + i % 26), a));
    EXPECT_LIVE_BLOCKS(h, 200u);
    Map copy(m);  // copies keep the source's handle, all the way down
    EXPECT_EQ(copy.get_allocator(), m.get_allocator());
    EXPECT_EQ(copy.at(7).get_allocator(), a);
    EXPECT_LIVE_BLOCKS(h, 400u);
  }
  EXPECT_LIVE(h, 0, 0);
}

}  // namespace
