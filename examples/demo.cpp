// An in-memory time-series store on the configured handle, as an engine would
// use it.
//
//   writers   each owns some series: appends points to the series' buffer (a
//             std::vector on StlAllocator<Point, Handle>), and when a buffer
//             holds a window's worth, seals it: copies it into an immutable
//             window, publishes a new index node for the series (copy-on-write)
//             and retires the old node and window with handle.retire()
//   readers   scan the whole index under an epoch pin (handle.pin(), i.e.
//             enter_epoch/leave_epoch) and check every node's checksum, so a
//             node reclaimed under a reader would show up as a torn node;
//             their scratch vectors use the pmr adapter (BasicMemoryResource)
//
// The store is generic over the handle type, and its containers use the
// adapters' concrete form over it (StlAllocator<T, Handle>): the handle's fast
// path is inlined into every push_back, with no indirect call.
//   main      prints progress every half second, collects garbage, samples
//             the epoch lag; at the end prints the stats table and a reading
//             of it (or, with --json, the stats as JSON)
//
// Every mode runs it: where the handle has no epochs (default, mimalloc), or
// no shard manager to pin with (allocator_shards = 0), the readers are skipped
// and replaced nodes are freed at once; where it keeps no stats, the table is.
// With --profile (or SYDRA_ALLOC_PROF set), the handle's policy also names
// HeapProfiling (docs/profiling.md), and the demo ends with its top three
// allocation sites: where the run's bytes were allocated, estimated from
// one sample per 512 KiB.
// Usage: demo [--seconds N] [--json] [--profile]. Exit status 1 if a check fails.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>
#include <sydra/alloc/pmr.hpp>
#include <sydra/alloc/stl.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sa = sydra::alloc;

// A named namespace, not an anonymous one: its functions keep external
// linkage, so the executable exports them and --profile's dladdr names them.
namespace demo {

constexpr std::size_t series_count = 32;
constexpr std::size_t writer_count = 2;
constexpr std::size_t reader_count = 2;
constexpr std::size_t points_per_round = 4;  // a writer appends this many points to each of its series in turn

struct Point {
  std::int64_t ts;  // milliseconds
  double value;
};

// An index node: one series' latest sealed window and its summary. Immutable
// once published; replaced, never changed.
struct IndexNode {
  std::uint64_t series;
  std::uint64_t version;       // 1, 2, 3, ... per series
  std::uint64_t points_total;  // points sealed into this series so far
  std::int64_t first_ts, last_ts;
  double min, max, sum;  // over the window
  const Point* window;
  std::uint64_t window_len;
  std::uint64_t checksum;  // of every field above and the window's points
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  h = (h ^ v) * 0xff51afd7ed558ccdull;
  return h ^ (h >> 32);
}
template <class T>
std::uint64_t bits(T v) noexcept {
  return std::bit_cast<std::uint64_t>(v);
}
std::uint64_t checksum_of(const IndexNode& n) noexcept {
  std::uint64_t h = 0x6a09e667f3bcc908ull;
  for (const std::uint64_t v : {n.series, n.version, n.points_total, bits(n.first_ts), bits(n.last_ts), bits(n.min),
                                bits(n.max), bits(n.sum), bits(n.window), n.window_len})
    h = mix(h, v);
  for (std::uint64_t i = 0; i < n.window_len; ++i) h = mix(mix(h, bits(n.window[i].ts)), bits(n.window[i].value));
  return h;
}

// Counters each thread writes alone (relaxed stores), read for the progress line.
struct alignas(64) Progress {
  std::atomic<std::uint64_t> points{0}, seals{0}, retired{0}, scans{0};
  void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};


// ---- The store: engine code, generic over the handle --------------------------------
template <class Handle>
class TimeSeriesStore {
 public:
  template <class T>
  using Alloc = sa::StlAllocator<T, Handle>;  // the concrete form: calls h.alloc / h.free directly
  using Buffer = std::vector<Point, Alloc<Point>>;
  using Name = std::basic_string<char, std::char_traits<char>, Alloc<char>>;
  // Readers need a pin to know when a replaced node may be freed.
  static constexpr bool has_epochs = Handle::has_epochs;

  TimeSeriesStore(Handle& h, std::size_t n) : h_(h), series_(Alloc<Series>(h)), index_(n, Alloc<Slot>(h)) {
    series_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) series_.emplace_back(i, h);
  }
  TimeSeriesStore(const TimeSeriesStore&) = delete;
  TimeSeriesStore& operator=(const TimeSeriesStore&) = delete;
  // After every reader and writer has stopped: nobody can see the nodes.
  ~TimeSeriesStore() {
    for (Slot& s : index_) {
      if (IndexNode* n = s.load(std::memory_order_acquire)) free_node(n);
    }
  }

  std::size_t size() const noexcept { return series_.size(); }
  const Name& name(std::size_t s) const noexcept { return series_[s].name; }

  // ---- Writers: each series has one writer ----------------------------------------
  // Appends a point; seals the buffer into a new index node when it holds a
  // window. Throws std::bad_alloc when memory is short (the adapters do).
  // Out of line, as seal() and scan(): a heap profile (demo --profile) names
  // its allocation sites by function, and an optimiser would fold these into
  // their callers.
  [[gnu::noinline]] void append(std::size_t s, double value, Progress& c) {
    Series& se = series_[s];
    se.buffer.push_back(Point{se.next_ts, value});
    se.next_ts += 10;
    if (se.buffer.size() >= se.window) seal(se, s, c);
  }

  // ---- Readers -----------------------------------------------------------------------
  // What a reader keeps between scans: its last answer, and what the checks need.
  struct Reader {
    explicit Reader(Handle& h) : resource(h), last_version(series_count, 0, Alloc<std::uint64_t>(h)) {}
    sa::BasicMemoryResource<Handle> resource;  // for each scan's scratch vector
    std::vector<std::uint64_t, Alloc<std::uint64_t>> last_version;
    std::uint64_t torn = 0, regressions = 0, nodes = 0;
    std::size_t hottest = 0;  // the series whose latest window had the highest mean, in the last scan
    double hottest_mean = 0;
    const char* refused = nullptr;  // why a pin was refused
  };

  // One pass over the index under a pin. False if the pin was refused
  // (st.refused says why): the reader must not read then.
  [[gnu::noinline]] bool scan(Reader& st)
    requires has_epochs
  {
    struct Mean {
      float value;
      std::uint32_t series;
    };
    std::pmr::vector<Mean> means(&st.resource);  // this scan's scratch (256 B), through the pmr adapter
    means.reserve(index_.size());
    {
      auto pin = h_.pin();
      if (!pin) {
        st.refused = pin.why();
        return false;
      }
      for (std::size_t s = 0; s < index_.size(); ++s) {
        const IndexNode* n = index_[s].load(std::memory_order_acquire);
        if (n == nullptr) continue;
        // A node freed under this reader would be junk (checked builds fill
        // reclaimed blocks) or another block's data by now.
        if (n->series != s || checksum_of(*n) != n->checksum) {
          ++st.torn;
          continue;
        }
        if (n->version < st.last_version[s]) ++st.regressions;  // the index never goes back
        st.last_version[s] = n->version;
        const double mean = n->sum / static_cast<double>(n->window_len);
        means.push_back({static_cast<float>(mean), static_cast<std::uint32_t>(s)});
        ++st.nodes;
      }
    }  // unpinned: what follows touches only this reader's own memory
    if (!means.empty()) {
      const Mean& top = *std::max_element(means.begin(), means.end(),
                                          [](const Mean& x, const Mean& y) { return x.value < y.value; });
      st.hottest = top.series;
      st.hottest_mean = top.value;
    }
    return true;
  }

  // ---- After the run (no thread running) ---------------------------------------------
  struct Totals {
    std::uint64_t points = 0;  // sealed + buffered
    std::uint64_t bytes = 0;   // the store's blocks: buffers, windows, nodes, its two arrays (names aside)
    std::uint64_t bad_nodes = 0;
  };
  Totals totals() const {
    Totals t;
    t.bytes = series_.capacity() * sizeof(Series) + index_.capacity() * sizeof(Slot);
    for (std::size_t s = 0; s < series_.size(); ++s) {
      const Series& se = series_[s];
      t.points += se.sealed + se.buffer.size();
      t.bytes += se.buffer.capacity() * sizeof(Point);
      const IndexNode* n = index_[s].load(std::memory_order_acquire);
      if (n == nullptr) {
        t.bad_nodes += se.sealed != 0;
        continue;
      }
      t.bytes += sizeof(IndexNode) + n->window_len * sizeof(Point);
      const bool agrees = n->points_total == se.sealed && n->version == se.version;
      if (n->series != s || checksum_of(*n) != n->checksum || !agrees) ++t.bad_nodes;
    }
    return t;
  }
  std::uint64_t retire_failures() const noexcept { return retire_failures_.load(std::memory_order_relaxed); }

 private:
  using Slot = std::atomic<IndexNode*>;
  struct Series {
    Series(std::size_t id, Handle& h)
        : name(make_name(id), Alloc<char>(h)), buffer(Alloc<Point>(h)), window(std::size_t{8} << (id % 5)) {}
    static std::string make_name(std::size_t id) {
      static constexpr const char* metric[] = {"cpu.user_pct", "cpu.system_pct", "mem.used_bytes",
                                               "disk.io_wait_ms"};
      return fmt::format("host-{:02}/{}", id / 4, metric[id % 4]);
    }
    Name name;
    Buffer buffer;
    std::size_t window;  // points per sealed window: 8 to 128, so windows of 128 B to 2 KiB
    std::int64_t next_ts = 1'700'000'000'000;
    std::uint64_t sealed = 0;
    std::uint64_t version = 0;
  };

  // Copies the buffer into a window, publishes a new node, retires the old
  // one, and starts a fresh buffer (the old one is freed: a memtable handed off).
  [[gnu::noinline]] void seal(Series& se, std::size_t s, Progress& c) {
    const std::size_t len = se.buffer.size();
    auto* w = static_cast<Point*>(h_.alloc(len * sizeof(Point), alignof(Point)));
    if (w == nullptr) throw std::bad_alloc();
    std::uninitialized_copy(se.buffer.begin(), se.buffer.end(), w);
    void* mem = h_.alloc(sizeof(IndexNode), alignof(IndexNode));
    if (mem == nullptr) {
      h_.free(w, len * sizeof(Point), alignof(Point));
      throw std::bad_alloc();
    }
    auto* n = ::new (mem) IndexNode{};
    n->series = s;
    n->version = se.version + 1;
    n->points_total = se.sealed + len;
    n->first_ts = w[0].ts;
    n->last_ts = w[len - 1].ts;
    n->min = n->max = w[0].value;
    n->sum = 0;
    for (std::size_t i = 0; i < len; ++i) {
      n->min = std::min(n->min, w[i].value);
      n->max = std::max(n->max, w[i].value);
      n->sum += w[i].value;
    }
    n->window = w;
    n->window_len = len;
    n->checksum = checksum_of(*n);
    IndexNode* old = index_[s].exchange(n, std::memory_order_acq_rel);  // published: readers may see it now
    se.version += 1;
    se.sealed += len;
    Buffer fresh{Alloc<Point>(h_)};
    se.buffer.swap(fresh);
    c.add(c.seals, 1);
    if (old != nullptr) retire_node(old, c);
  }

  // A replaced node may still be read by a pinned reader: retire() frees it
  // once no reader pinned before now is still pinned. Without epochs there
  // are no readers to wait for.
  void retire_node(IndexNode* n, Progress& c) {
    if constexpr (has_epochs) {
      Point* w = const_cast<Point*>(n->window);  // read before retiring: the node is not ours afterwards
      const std::size_t len = n->window_len;
      retire_block(w, len * sizeof(Point), alignof(Point));
      retire_block(n, sizeof(IndexNode), alignof(IndexNode));
      c.add(c.retired, 2);
    } else {
      free_node(n);
    }
  }
  void retire_block(void* p, std::size_t len, std::size_t align)
    requires has_epochs
  {
    if (h_.retire(p, len, align)) return;
    // No memory for a retire bag: reclaim what can be, and try once more.
    h_.collect_garbage();
    if (h_.retire(p, len, align)) return;
    // Freeing it now could pull it from under a reader: keep it (a leak the
    // checks report) rather than risk that.
    retire_failures_.fetch_add(1, std::memory_order_relaxed);
  }
  void free_node(IndexNode* n) noexcept {
    h_.free(const_cast<Point*>(n->window), n->window_len * sizeof(Point), alignof(Point));
    h_.free(n, sizeof(IndexNode), alignof(IndexNode));  // IndexNode is trivially destructible
  }

  Handle& h_;
  std::vector<Series, Alloc<Series>> series_;
  std::vector<Slot, Alloc<Slot>> index_;  // slot s: series s's current node
  std::atomic<std::uint64_t> retire_failures_{0};
};

// ---- The program ------------------------------------------------------------------------

struct Args {
  double seconds = 2.0;
  bool json = false;
  bool profile = false;
};

std::string group(std::uint64_t n) {  // 1234567 -> "1,234,567"
  std::string s;
  for (int digits = 0; n != 0 || digits == 0; n /= 10, ++digits) {
    if (digits != 0 && digits % 3 == 0) s += ',';
    s += static_cast<char>('0' + n % 10);
  }
  std::reverse(s.begin(), s.end());
  return s;
}
std::string bytes(std::uint64_t n) {  // 512 B, 38.2 KiB, 4.0 MiB
  if (n < 1024) return fmt::format("{} B", n);
  if (n < (std::uint64_t{1} << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(n) / (1 << 10));
  return fmt::format("{:.1f} MiB", static_cast<double>(n) / (1 << 20));
}

// The configured policy with the heap profiler (--profile).
struct ProfiledPolicy : sa::ConfiguredPolicy {
  using Profiling = sa::HeapProfiling;
};

// "R ns::Type<A, B>::f(int) const" -> "ns::Type<>::f": the qualified name
// of a demangled function, its template arguments, parameters and return
// type left out.
std::string qualified_name(std::string_view demangled) {
  std::string out;
  int depth = 0;
  for (char c : demangled) {
    if (c == '(' && depth == 0) break;
    if (c == '<' && depth++ == 0) out += "<>";
    else if (c == '>') --depth;
    else if (depth == 0) out += c;
  }
  const std::size_t space = out.rfind(' ');
  return space == std::string::npos ? out : out.substr(space + 1);
}

// The frame that names a site: the first one outside the allocator and the
// standard library (containers call it for the demo's code). The executable
// exports its symbols (examples/meson.build), so dladdr finds them.
std::string site_name(const sa::prof::SiteRow& row) {
  for (unsigned i = 0; i < row.depth; ++i) {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(row.frames[i] - 1), &info) == 0 || info.dli_sname == nullptr) continue;
    int status = 0;
    char* d = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    const std::string name = qualified_name(status == 0 && d != nullptr ? d : info.dli_sname);
    std::free(d);
    if (name.starts_with("sydra::alloc::") || name.starts_with("std::") || name.starts_with("__gnu_cxx::") ||
        name.starts_with("operator new"))
      continue;
    return name;
  }
  return fmt::format("{:#x} (not in the executable's symbols)", row.depth != 0 ? row.frames[0] : 0);
}

// The run's allocations by site (the stacks that one function names, together).
template <class Handle>
void print_top_sites(std::FILE* out, Handle& h) {
  sa::prof::HeapProfile* p = h.heap_profile();
  if (p == nullptr) return;
  p->stop();
  std::vector<sa::prof::SiteRow> rows(256);
  rows.resize(p->sites(sa::prof::ProfileKind::window, rows.data(), rows.size()));
  struct Site {
    std::string name;
    double bytes = 0, blocks = 0;
  };
  std::vector<Site> sites;
  for (const sa::prof::SiteRow& r : rows) {
    const std::string name = site_name(r);
    auto it = std::find_if(sites.begin(), sites.end(), [&](const Site& s) { return s.name == name; });
    if (it == sites.end()) it = sites.insert(sites.end(), Site{name});
    it->bytes += r.bytes, it->blocks += r.blocks;
  }
  std::sort(sites.begin(), sites.end(), [](const Site& a, const Site& b) { return a.bytes > b.bytes; });
  if (sites.size() > 3) sites.resize(3);
  const double all = p->totals(sa::prof::ProfileKind::window).bytes;
  fmt::print(out, "profile: top {} allocation sites of the run (estimated from one sample per {} KiB; {:.0f} MiB "
                  "allocated in all):\n",
             sites.size(), p->mean_bytes() >> 10, all / (1 << 20));
  for (std::size_t i = 0; i < sites.size(); ++i)
    fmt::print(out, "  {}. {:8.1f} MiB {:5.1f}%  {:>10} blocks  {}\n", i + 1, sites[i].bytes / (1 << 20),
               100 * sites[i].bytes / all, group(static_cast<std::uint64_t>(sites[i].blocks)), sites[i].name);
}
std::string times(std::uint64_t n) { return n == 1 ? "once" : group(n) + " times"; }
std::string plural(std::uint64_t n, std::string_view what) {
  return fmt::format("{} {}{}", group(n), what, n == 1 ? "" : "s");
}
double percent(std::uint64_t part, std::uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

// Epoch lag, sampled while the readers run.
struct LagSamples {
  std::uint64_t samples = 0, pinned = 0, max = 0, total = 0;
  void add(const sa::Stats& s) {
    ++samples;
    if (!s.has_shards || s.shards.pinned_threads == 0) return;
    const std::uint64_t lag = s.shards.current_epoch - s.shards.min_pinned_epoch;
    ++pinned;
    total += lag;
    max = std::max(max, lag);
  }
};

int failures = 0;
template <class... T>
void check(bool ok, fmt::format_string<T...> what, T&&... args) {
  if (ok) return;
  ++failures;
  fmt::print(stderr, "FAIL: {}\n", fmt::format(what, std::forward<T>(args)...));
}

// A few lines of our own under the table's reading: what the numbers mean for
// this workload.
[[maybe_unused]] void read_for_demo(std::FILE* out, const sa::Stats& s, const LagSamples& lag,
                                    std::uint64_t store_bytes, std::size_t allocating_threads) {
  std::uint64_t bucket_allocs = 0, moves = 0, acquisitions = 0, contended = 0, wait_ns = 0, threshold = 0;
  for (const sa::BucketStats& b : s.buckets) {
    bucket_allocs += b.allocations;
    moves += b.refills + b.flushes;
    acquisitions += b.lock.acquisitions;
    contended += b.lock.contended;
    wait_ns += b.lock.wait_ns;
    threshold = std::max(threshold, b.lock.threshold_ns);
  }
  const std::uint64_t largest = s.classes.empty() ? 0 : s.classes.back();
  std::uint64_t fallback_small = 0;  // fallback allocations of pooled sizes
  for (std::size_t i = 0; i < sa::FallbackStats::bounds.size(); ++i)
    if (sa::FallbackStats::bounds[i] <= largest) fallback_small += s.fallback.sizes[i];
  const std::uint64_t total = s.shards.alloc_hits + bucket_allocs + s.fallback.allocs;

  std::vector<std::string> paths;
  if (s.has_shards)
    paths.push_back(fmt::format("shards {:.1f}% (threads that own one: nodes, short windows, small buffers)",
                                percent(s.shards.alloc_hits, total)));
  if (s.has_buckets)
    paths.push_back(
        fmt::format("per-CPU caches and buckets {:.1f}% (threads without a shard)", percent(bucket_allocs, total)));
  if (s.has_fallback)
    paths.push_back(fmt::format("fallback {:.1f}% (blocks above {} B: longer windows, grown buffers{})",
                                percent(s.fallback.allocs, total), largest,
                                fallback_small != 0 ? fmt::format("; and {} of pooled sizes, the pools being short",
                                                                  group(fallback_small))
                                                    : std::string()));
  std::string listed;
  for (const std::string& p : paths) listed += (listed.empty() ? "" : ", ") + p;
  fmt::print(out, "demo: paths: {} allocations: {}\n", group(total), listed);
  if (s.has_shards) {
    const std::size_t shards = s.shards.shard_count;
    const std::size_t without = allocating_threads > shards ? allocating_threads - shards : 0;
    fmt::print(out, "demo: shards: {} threads allocated, {} shards: {}\n", allocating_threads, shards,
               s.shards.alloc_misses != 0
                   ? fmt::format("{} found none free; {} {} small allocations went to the per-CPU caches and "
                                 "buckets (alloc_misses)",
                                 without == 1 ? std::string("one thread") : plural(without, "thread"),
                                 without == 1 ? "its" : "their", group(s.shards.alloc_misses))
                   : std::string("every small allocation came from a thread with a shard"));
  }
  if (s.has_buckets) {
    if (acquisitions != 0) {
      fmt::print(out, "demo: contention: bucket locks taken {} ({} between the per-CPU caches and the buckets); {} "
                      "waited over {} ns, {} ns waited in all\n",
                 times(acquisitions), plural(moves, "batch move"), group(contended), threshold, group(wait_ns));
    } else if (moves != 0) {
      fmt::print(out, "demo: contention: {} took a bucket lock; no lock times (lock timing is off in this build: "
                      "PlainLock)\n",
                 plural(moves, "batch move"));
    } else {
      fmt::print(out, "demo: contention: none possible: no thread used the buckets (every one had a shard)\n");
    }
  }
  if (s.has_shards) {
    if (lag.pinned != 0) {
      fmt::print(out, "demo: epochs: epoch {} at the end; lag (current_epoch - min_pinned_epoch) in {} samples taken "
                      "while a reader was pinned: max {}, mean {:.2f}; {} blocks retired, {} not yet reclaimed\n",
                 group(s.shards.current_epoch), lag.pinned, lag.max,
                 static_cast<double>(lag.total) / static_cast<double>(lag.pinned), group(s.shards.retired),
                 group(s.shards.retired_pending));
    } else {
      fmt::print(out, "demo: epochs: epoch {} at the end; no sample caught a reader pinned; {} blocks retired, {} not "
                      "yet reclaimed\n",
                 group(s.shards.current_epoch), group(s.shards.retired), group(s.shards.retired_pending));
    }
  }
  if (s.has_memory) {
    fmt::print(out, "demo: memory: slabs {} committed ({} in use, {} retained, budget {}) of {} reserved; fallback {} "
                    "live in {} blocks; the store's own blocks: {}\n",
               bytes(s.memory.committed_bytes), bytes(s.memory.in_use_bytes), bytes(s.memory.retained_bytes),
               bytes(s.memory.retain_budget_bytes), bytes(s.memory.reserved_bytes), bytes(s.fallback.bytes_live),
               group(s.fallback.blocks_live), bytes(store_bytes));
  } else if (s.has_fallback) {
    fmt::print(out, "demo: memory: fallback {} live in {} blocks; the store's own blocks: {}\n",
               bytes(s.fallback.bytes_live), group(s.fallback.blocks_live), bytes(store_bytes));
  }
}

template <class Handle>
int run(Handle& h, const Args& args) {
  using Store = TimeSeriesStore<Handle>;
  std::FILE* log = args.json ? stderr : stdout;  // --json: stdout holds the JSON document only
  const std::string mode(sa::mode);
  if constexpr (Handle::profiled) h.heap_profile()->start();  // the run's allocations, for print_top_sites
  fmt::print(log, "sydra-alloc demo: an in-memory time-series store on the {} handle: {} series, {} writers, {} "
                  "readers, {} s\n",
             mode, series_count, writer_count, reader_count, args.seconds);
  // Readers need epochs, and a pin this handle will grant.
  bool readers_run = Handle::has_epochs;
  if constexpr (Handle::has_epochs) {
    if (auto probe = h.pin(); !probe) {
      readers_run = false;
      fmt::print(log, "readers: skipped: {}; retire() then frees at once, nobody being able to pin\n", probe.why());
    }
  } else {
    fmt::print(log, "readers: skipped: mode {} has no epochs (no enter_epoch/leave_epoch), so nothing would tell a "
                    "writer when a replaced index node is safe to free; writers free replaced nodes at once\n",
               mode);
  }

  std::uint64_t ingested = 0, scans = 0, retired = 0;
  LagSamples lag;
  {
    Store store(h, series_count);
    std::atomic<bool> stop{false}, writer_failed{false};
    std::vector<Progress> counters(writer_count + reader_count);
    std::vector<typename Store::Reader> readers;
    readers.reserve(reader_count);
    for (std::size_t r = 0; r < reader_count; ++r) readers.emplace_back(h);

    // Writers start first, as ingest would: each takes a shard with its first
    // allocation. The readers start once every writer has made one.
    std::vector<std::thread> threads;
    std::latch writers_started(writer_count);
    for (std::size_t w = 0; w < writer_count; ++w) {
      threads.emplace_back([&, w] {
        Progress& c = counters[w];
        std::uint64_t x = 0x9e3779b97f4a7c15ull * (w + 1);
        std::vector<double> value(series_count, 50.0);
        bool started = false;
        auto arrive = [&] {
          if (!std::exchange(started, true)) writers_started.count_down();
        };
        try {
          do {
            for (std::size_t s = w; s < store.size(); s += writer_count) {
              for (std::size_t k = 0; k < points_per_round; ++k) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                const double step = static_cast<double>(static_cast<int>(x >> 54) - 512) / 256.0;  // -2 .. +2
                value[s] = std::clamp(value[s] + step, 0.0, 100.0);
                store.append(s, value[s], c);
              }
              c.add(c.points, points_per_round);
            }
            arrive();
          } while (!stop.load(std::memory_order_relaxed));
        } catch (const std::bad_alloc&) {
          writer_failed.store(true);
        }
        arrive();
      });
    }
    writers_started.wait();
    if constexpr (Handle::has_epochs) {
      for (std::size_t r = 0; r < reader_count && readers_run; ++r) {
        threads.emplace_back([&, r] {
          Progress& c = counters[writer_count + r];
          do {
            if (!store.scan(readers[r])) return;  // not pinned: not allowed to read
            c.add(c.scans, 1);
          } while (!stop.load(std::memory_order_relaxed));
        });
      }
    }

    // Progress: every 100 ms collect garbage and sample the epoch lag; a line every 500 ms.
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto end = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(args.seconds));
    auto next_line = start + std::chrono::milliseconds(500);
    for (auto tick = start;;) {
      tick += std::chrono::milliseconds(100);
      std::this_thread::sleep_until(std::min(tick, end));
      const auto now = clock::now();
      if constexpr (requires { h.collect_garbage(); }) h.collect_garbage();
      std::string epoch_part;
      if constexpr (Handle::has_stats) {
        const sa::Stats s = h.snapshot_stats();
        lag.add(s);
        if (s.has_shards) {
          const sa::ShardSummary& e = s.shards;
          epoch_part = fmt::format(" | epoch {} lag {} | {} retired pending", e.current_epoch,
                                   e.pinned_threads != 0 ? e.current_epoch - e.min_pinned_epoch : 0,
                                   group(e.retired_pending));
        }
      }
      if (now >= next_line || now >= end) {
        std::uint64_t p = 0, seals = 0, sc = 0, ret = 0;
        for (const Progress& c : counters) {
          p += c.points.load(std::memory_order_relaxed);
          seals += c.seals.load(std::memory_order_relaxed);
          sc += c.scans.load(std::memory_order_relaxed);
          ret += c.retired.load(std::memory_order_relaxed);
        }
        const double t = std::chrono::duration<double>(now - start).count();
        fmt::print(log, "  {:5.1f} s  {:>11} points ({:5.2f} M/s) | {:>9} windows sealed{}{}{}\n", t, group(p),
                   static_cast<double>(p) / t / 1e6, group(seals),
                   readers_run ? fmt::format(" | {:>8} scans", group(sc)) : std::string(),
                   Handle::has_epochs ? fmt::format(" | {:>10} retired", group(ret)) : std::string(), epoch_part);
        std::fflush(log);
        next_line += std::chrono::milliseconds(500);
      }
      if (now >= end) break;
    }
    stop.store(true);
    for (std::thread& t : threads) t.join();
    // Nobody is pinned now: everything retired can be reclaimed.
    if constexpr (requires { h.collect_garbage(); }) h.collect_garbage();

    for (const Progress& c : counters) {
      ingested += c.points.load();
      scans += c.scans.load();
      retired += c.retired.load();
    }
    const typename Store::Totals totals = store.totals();
    std::uint64_t torn = 0, regressions = 0;
    const char* refused = nullptr;
    for (const typename Store::Reader& r : readers) {
      torn += r.torn;
      regressions += r.regressions;
      if (r.refused != nullptr) refused = r.refused;
    }
    if (refused != nullptr) fmt::print(log, "readers: a pin was refused ({}); that reader stopped\n", refused);

    // The checks: the demo is its own test.
    check(!writer_failed.load(), "a writer ran out of memory");
    check(ingested > 0, "nothing was ingested");
    check(totals.points == ingested, "the store holds {} points, the writers ingested {}", totals.points, ingested);
    check(totals.bad_nodes == 0, "{} index nodes fail their checksum or disagree with their series", totals.bad_nodes);
    check(torn == 0, "readers saw {} torn index nodes (reclaimed under a pin?)", torn);
    check(regressions == 0, "readers saw a series' index go back {} times", regressions);
    check(store.retire_failures() == 0, "{} blocks could not be retired", store.retire_failures());
    if (readers_run) check(refused != nullptr || scans >= reader_count, "the readers did not scan ({} scans)", scans);

    std::uint64_t nodes_seen = 0;
    for (const typename Store::Reader& r : readers) nodes_seen += r.nodes;
    fmt::print(log, "done: {} points into {} series ({:.2f} M points/s){}{}\n", group(ingested), series_count,
               static_cast<double>(ingested) / args.seconds / 1e6,
               readers_run ? fmt::format("; {} pinned scans checked {} index nodes, {} torn", group(scans),
                                         group(nodes_seen), torn)
                           : std::string(),
               Handle::has_epochs ? fmt::format("; {} blocks retired{}", group(retired),
                                                readers_run ? "" : " (freed at once: nobody can pin)")
                                  : std::string());
    if (readers_run && readers[0].nodes != 0)
      fmt::print(log, "query: the last scan's hottest series is {} (latest window's mean {:.1f})\n",
                 store.name(readers[0].hottest), readers[0].hottest_mean);

    if constexpr (Handle::has_stats) {
      const sa::Stats s = h.snapshot_stats();
      if (s.has_shards)
        check(s.shards.retired == retired, "stats count {} retired blocks, the writers {}", s.shards.retired, retired);
      if (args.json) {
        std::fputs(sa::to_json(s).c_str(), stdout);
        std::fputc('\n', stdout);
      } else {
        fmt::print("\n{}", s);
        read_for_demo(stdout, s, lag, totals.bytes, 1 + writer_count + (readers_run ? reader_count : 0));
      }
    } else {
      fmt::print(log, "stats: skipped: this build's {} handle keeps no stats (snapshot_stats() needs a layer with "
                      "stats: Tracked, MutexBuckets or ThreadShards)\n",
                 mode);
      if (args.json) fmt::print("{{\"mode\":\"{}\",\"stats\":null}}\n", mode);
    }
  }  // the store is gone: every block it held is freed or retired
  if constexpr (Handle::profiled) print_top_sites(log, h);

  if constexpr (requires { h.collect_garbage(); }) h.collect_garbage();
  if constexpr (requires { h.leaks(); }) {
    const sa::LeakReport left = h.leaks();
    check(left.blocks == 0 && !left.underflow, "{} blocks ({} bytes) live after the store was destroyed", left.blocks,
          left.bytes);
    fmt::print(log, "after cleanup: {} blocks live\n", left.blocks);
  }
  if (failures != 0) {
    fmt::print(stderr, "demo: {} check(s) failed\n", failures);
    return 1;
  }
  return 0;
}

}  // namespace demo

using namespace demo;

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--json") {
      args.json = true;
    } else if (a == "--profile") {
      args.profile = true;
    } else if (a == "--seconds" && i + 1 < argc) {
      char* end = nullptr;
      args.seconds = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(args.seconds > 0 && args.seconds <= 3600)) {
        std::fprintf(stderr, "demo: --seconds wants a number of seconds, above 0 and at most 3600\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--seconds N] [--json] [--profile]\n", argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (const char* v = std::getenv("SYDRA_ALLOC_PROF"); v != nullptr && *v != '\0') args.profile = true;
  if (args.profile) {
    sa::BasicAllocatorHandle<ProfiledPolicy> handle;  // the same, sampled
    return run(handle, args);
  }
  sa::AllocatorHandle handle;  // the mode Meson was configured with
  return run(handle, args);
}
