// Stats as text: fmt::format("{}", stats) gives an aligned table, to_json()
// gives JSON with the same numbers (field names follow the struct's).
#pragma once

#include <sydra/alloc/mixin/stats.hpp>

#include <fmt/format.h>

#include <iterator>
#include <string>

namespace sydra::alloc {
inline namespace v1 {

namespace detail {
template <class Out>
Out format_lock_json(Out out, const LockStats& l) {
  return fmt::format_to(out,
                        R"({{"acquisitions":{},"contended":{},"wait_ns":{},"max_wait_ns":{},"hold_ns":{},)"
                        R"("hold_samples":{},"threshold_ns":{}}})",
                        l.acquisitions, l.contended, l.wait_ns, l.max_wait_ns, l.hold_ns, l.hold_samples,
                        l.threshold_ns);
}
}  // namespace detail

inline std::string to_json(const Stats& s) {
  std::string out;
  auto it = std::back_inserter(out);
  it = fmt::format_to(it, R"({{"version":{},"mode":"{}","has_buckets":{},"has_fallback":{},"has_shards":{},)",
                      s.version, s.mode, s.has_buckets, s.has_fallback, s.has_shards);
  it = fmt::format_to(it, R"("buckets":[)");
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    const BucketStats& b = s.buckets[i];
    it = fmt::format_to(it,
                        R"({}{{"size":{},"block_size":{},"allocations":{},"frees":{},"refills":{},"in_use":{},)"
                        R"("high_water":{},"slabs":{},"free_blocks":{},"lock":)",
                        i == 0 ? "" : ",", b.size, b.block_size, b.allocations, b.frees, b.refills, b.in_use,
                        b.high_water, b.slabs, b.free_blocks);
    it = detail::format_lock_json(it, b.lock);
    it = fmt::format_to(it, "}}");
  }
  const FallbackStats& f = s.fallback;
  it = fmt::format_to(it,
                      R"(],"fallback":{{"allocs":{},"frees":{},"resizes":{},"remaps":{},"size_bounds":[{}],)"
                      R"("sizes":[{}]}},)",
                      f.allocs, f.frees, f.resizes, f.remaps, fmt::join(FallbackStats::bounds, ","),
                      fmt::join(f.sizes, ","));
  const ShardSummary& h = s.shards;
  it = fmt::format_to(it,
                      R"("shards":{{"shard_count":{},"alloc_hits":{},"alloc_misses":{},"deferred_total":{},)"
                      R"("reclaimed_total":{},"backlog":{},"current_epoch":{},"min_pinned_epoch":{},)"
                      R"("pinned_threads":{},"per_shard":[)",
                      h.shard_count, h.alloc_hits, h.alloc_misses, h.deferred_total, h.reclaimed_total, h.backlog,
                      h.current_epoch, h.min_pinned_epoch, h.pinned_threads);
  for (std::size_t i = 0; i < h.shards.size(); ++i) {
    const ShardStats& sh = h.shards[i];
    it = fmt::format_to(it, R"({}{{"index":{},"owned":{},"alloc_hits":{},"backlog":{},"classes":[)", i == 0 ? "" : ",",
                        sh.index, sh.owned, sh.alloc_hits, sh.backlog);
    for (std::size_t c = 0; c < sh.classes.size(); ++c) {
      const ShardClassStats& k = sh.classes[c];
      it = fmt::format_to(it, R"({}{{"size":{},"allocations":{},"in_use":{},"deferred":{},"reclaimed":{}}})",
                          c == 0 ? "" : ",", k.size, k.allocations, k.in_use, k.deferred, k.reclaimed);
    }
    it = fmt::format_to(it, "]}}");
  }
  fmt::format_to(it, "]}}}}");
  return out;
}

}  // namespace v1
}  // namespace sydra::alloc

template <>
struct fmt::formatter<sydra::alloc::Stats> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }

  template <class FormatContext>
  auto format(const sydra::alloc::Stats& s, FormatContext& ctx) const {
    auto out = ctx.out();
    out = fmt::format_to(out, "sydra-alloc stats v{} (mode {})\n", s.version, s.mode);
    if (s.has_buckets) {
      out = fmt::format_to(out, "{:>6} {:>10} {:>10} {:>8} {:>9} {:>10} {:>6} {:>10} {:>10} {:>9} {:>12} {:>11}\n",
                           "bucket", "allocs", "frees", "refills", "in_use", "high_water", "slabs", "free_blks",
                           "lock_acq", "contended", "wait_ns", "max_wait_ns");
      for (const auto& b : s.buckets)
        out = fmt::format_to(out, "{:>6} {:>10} {:>10} {:>8} {:>9} {:>10} {:>6} {:>10} {:>10} {:>9} {:>12} {:>11}\n",
                             b.size, b.allocations, b.frees, b.refills, b.in_use, b.high_water, b.slabs,
                             b.free_blocks, b.lock.acquisitions, b.lock.contended, b.lock.wait_ns,
                             b.lock.max_wait_ns);
    }
    if (s.has_fallback) {
      const auto& f = s.fallback;
      out = fmt::format_to(out, "fallback: allocs {} frees {} resizes {} remaps {}\n", f.allocs, f.frees, f.resizes,
                           f.remaps);
      out = fmt::format_to(out, "{:>9}", "size <=");
      for (auto b : sydra::alloc::FallbackStats::bounds) out = fmt::format_to(out, " {:>8}", b);
      out = fmt::format_to(out, " {:>8}\n{:>9}", "larger", "count");
      for (auto c : f.sizes) out = fmt::format_to(out, " {:>8}", c);
      out = fmt::format_to(out, "\n");
    }
    if (s.has_shards) {
      const auto& h = s.shards;
      out = fmt::format_to(out,
                           "shards: {} | hits {} misses {} | deferred {} reclaimed {} backlog {} | epoch {} "
                           "min_pinned {} pinned_threads {}\n",
                           h.shard_count, h.alloc_hits, h.alloc_misses, h.deferred_total, h.reclaimed_total,
                           h.backlog, h.current_epoch, h.min_pinned_epoch, h.pinned_threads);
      out = fmt::format_to(out, "{:>6} {:>6} {:>10} {:>9} | in use by class:", "shard", "owned", "hits", "backlog");
      for (auto size : sydra::alloc::size_classes) out = fmt::format_to(out, " {:>7}", size);
      out = fmt::format_to(out, "\n");
      for (const auto& sh : h.shards) {
        out = fmt::format_to(out, "{:>6} {:>6} {:>10} {:>9} | {:>15}", sh.index, sh.owned ? "yes" : "no",
                             sh.alloc_hits, sh.backlog, "");
        for (const auto& c : sh.classes) out = fmt::format_to(out, " {:>7}", c.in_use);
        out = fmt::format_to(out, "\n");
      }
    }
    return out;
  }
};
