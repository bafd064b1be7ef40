// Stats as text. fmt::format("{}", stats) gives an aligned table whose column
// names are the JSON field names (rows that are all zero are left out;
// "{:a}" shows them too), ending with a short reading of the numbers.
// to_json(stats) gives JSON with the same numbers (schema:
// docs/stats.schema.json; every field: docs/stats.md).
#pragma once

#include <sydra/alloc/mixin/stats.hpp>

#include <fmt/format.h>

#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

namespace detail {
template <class Out>
Out format_lock_json(Out out, const LockStats& l) {
  return fmt::format_to(out,
                        R"({{"acquisitions":{},"contended":{},"wait_ns":{},"max_wait_ns":{},"hold_ns":{},)"
                        R"("hold_samples":{},"threshold_ns":{}}})",
                        l.acquisitions, l.contended, l.wait_ns, l.max_wait_ns, l.hold_ns, l.hold_samples,
                        l.threshold_ns);
}
// A JSON string's contents: the policy's name is any C string.
template <class Out>
Out format_json_string(Out out, std::string_view text) {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      *out++ = '\\';
      *out++ = ch;
    } else if (c < 0x20) {
      out = fmt::format_to(out, "\\u{:04x}", c);
    } else {
      *out++ = ch;
    }
  }
  return out;
}
// A comma-separated list of numbers. (Not fmt::join: with g++ 12 and fmt 9
// its expansion draws a -Wstringop-overflow false positive in release builds.)
template <class Out, class Range>
Out format_number_list(Out out, const Range& r) {
  bool first = true;
  for (const auto& v : r) {
    if (!first) *out++ = ',';
    first = false;
    out = fmt::format_to(out, "{}", v);
  }
  return out;
}
}  // namespace detail

inline std::string to_json(const Stats& s) {
  std::string out;
  auto it = std::back_inserter(out);
  it = fmt::format_to(it, R"({{"version":{},"mode":")", s.version);
  it = detail::format_json_string(it, s.mode);
  it = fmt::format_to(it, R"(","has_buckets":{},"has_fallback":{},"has_shards":{},"has_epochs":{},"has_memory":{},)"
                      R"("classes":[)",
                      s.has_buckets, s.has_fallback, s.has_shards, s.has_epochs, s.has_memory);
  it = detail::format_number_list(it, s.classes);
  it = fmt::format_to(it, R"(],"buckets":[)");
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    const BucketStats& b = s.buckets[i];
    it = fmt::format_to(it,
                        R"({}{{"size":{},"block_size":{},"allocations":{},"frees":{},"in_use":{},"high_water":{},)"
                        R"("refills":{},"flushes":{},"cached":{},"slabs":{},"free_blocks":{},"lock":)",
                        i == 0 ? "" : ",", b.size, b.block_size, b.allocations, b.frees, b.in_use, b.high_water,
                        b.refills, b.flushes, b.cached, b.slabs, b.free_blocks);
    it = detail::format_lock_json(it, b.lock);
    it = fmt::format_to(it, "}}");
  }
  const FallbackStats& f = s.fallback;
  it = fmt::format_to(it,
                      R"(],"fallback":{{"allocs":{},"frees":{},"resizes":{},"remaps":{},"blocks_live":{},)"
                      R"("bytes_live":{},"counts_underflow":{},"size_bounds":[)",
                      f.allocs, f.frees, f.resizes, f.remaps, f.blocks_live, f.bytes_live, f.counts_underflow);
  it = detail::format_number_list(it, FallbackStats::bounds);
  it = fmt::format_to(it, R"(],"sizes":[)");
  it = detail::format_number_list(it, f.sizes);
  it = fmt::format_to(it, "]}},");
  const ShardSummary& h = s.shards;
  it = fmt::format_to(it,
                      R"("shards":{{"shard_count":{},"alloc_hits":{},"alloc_misses":{},"deferred_total":{},)"
                      R"("reclaimed_total":{},"backlog":{},"in_transit":{},"current_epoch":{},"min_pinned_epoch":{},)"
                      R"("pinned_threads":{},"retired":{},"retired_pending":{},"per_shard":[)",
                      h.shard_count, h.alloc_hits, h.alloc_misses, h.deferred_total, h.reclaimed_total, h.backlog,
                      h.in_transit, h.current_epoch, h.min_pinned_epoch, h.pinned_threads, h.retired,
                      h.retired_pending);
  for (std::size_t i = 0; i < h.shards.size(); ++i) {
    const ShardStats& sh = h.shards[i];
    it = fmt::format_to(it,
                        R"({}{{"index":{},"owned":{},"abandoned":{},"alloc_hits":{},"backlog":{},"reserved_bytes":{},"classes":[)",
                        i == 0 ? "" : ",", sh.index, sh.owned, sh.abandoned, sh.alloc_hits, sh.backlog, sh.reserved_bytes);
    for (std::size_t c = 0; c < sh.classes.size(); ++c) {
      const ShardClassStats& k = sh.classes[c];
      it = fmt::format_to(it,
                          R"({}{{"size":{},"allocations":{},"frees":{},"in_use":{},"deferred":{},"reclaimed":{},)"
                          R"("cached":{},"slabs":{}}})",
                          c == 0 ? "" : ",", k.size, k.allocations, k.frees, k.in_use, k.deferred, k.reclaimed,
                          k.cached, k.slabs);
    }
    it = fmt::format_to(it, "]}}");
  }
  const MemoryStats& m = s.memory;
  fmt::format_to(it,
                 R"(]}},"memory":{{"reserved_bytes":{},"committed_bytes":{},"in_use_bytes":{},"retained_bytes":{},)"
                 R"("decommitted_bytes":{},"metadata_bytes":{},"chunks":{},"slabs_reused_across_classes":{},)"
                 R"("decommits":{},"retain_budget_bytes":{},"chunks_released":{},"oom_retries":{}}}}})",
                 m.reserved_bytes, m.committed_bytes, m.in_use_bytes, m.retained_bytes, m.decommitted_bytes,
                 m.metadata_bytes, m.chunks, m.slabs_reused_across_classes, m.decommits, m.retain_budget_bytes,
                 m.chunks_released, m.oom_retries);
  return out;
}

// A few lines on what the numbers say and what a high figure calls for. The
// thresholds are rules of thumb, stated in docs/stats.md.
inline std::vector<std::string> read_stats(const Stats& s) {
  std::vector<std::string> lines;
  std::uint64_t bucket_allocs = 0, contended = 0, acquisitions = 0;
  for (const BucketStats& b : s.buckets) {
    bucket_allocs += b.allocations;
    contended += b.lock.contended;
    acquisitions += b.lock.acquisitions;
  }
  const std::uint64_t shard_allocs = s.shards.alloc_hits;
  const std::uint64_t total = shard_allocs + bucket_allocs + s.fallback.allocs;
  if (total != 0) {
    lines.push_back(fmt::format("served: {:.1f}% by shards, {:.1f}% by the per-CPU caches and buckets, {:.1f}% by the "
                                "fallback",
                                100.0 * static_cast<double>(shard_allocs) / static_cast<double>(total),
                                100.0 * static_cast<double>(bucket_allocs) / static_cast<double>(total),
                                100.0 * static_cast<double>(s.fallback.allocs) / static_cast<double>(total)));
  }
  if (s.has_shards && s.has_buckets && shard_allocs + bucket_allocs != 0 &&
      bucket_allocs * 4 > shard_allocs + bucket_allocs)
    lines.push_back("alloc_misses: over a quarter of small allocations came from threads without a shard; raise the "
                    "shard count (Options::pool.shards, or the policy's ShardFeatures::count) if those threads are hot");
  if (acquisitions != 0 && contended * 100 > acquisitions)
    lines.push_back("lock.contended: over 1% of bucket lock acquisitions waited beyond the threshold; more shards, "
                    "larger per-CPU caches (Options::pool.cpu_cache), or fewer threads per CPU");
  if (s.has_shards && s.shards.backlog > 4096)
    lines.push_back("backlog: many remote frees wait to be reclaimed; look for a reader that stays pinned, or call "
                    "collect_garbage() from the shards' owners");
  if (s.has_shards && s.shards.retired_pending > 4096)
    lines.push_back("retired_pending: many retired blocks wait for readers; a long pin holds them back (min_pinned_epoch "
                    "lags current_epoch)");
  if (s.has_shards && s.shards.pinned_threads != 0 && s.shards.min_pinned_epoch + 2 < s.shards.current_epoch)
    lines.push_back("epoch lag: a pinned reader is more than two epochs behind; keep pins short");
  if (s.fallback.counts_underflow)
    lines.push_back("counts_underflow: more fallback frees than allocations were counted (a double free, or a wrong "
                    "length, in an unchecked build); run a checked build to find it");
  if (s.has_memory && s.memory.retained_bytes > s.memory.retain_budget_bytes)
    lines.push_back("retained_bytes: above the retain budget; the excess is decommitted after the delay, or now by trim()");
  if (lines.size() <= 1) lines.push_back("nothing stands out");
  return lines;
}

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc

template <>
struct fmt::formatter<sydra::alloc::Stats> {
  bool all_rows = false;  // "{:a}": also the rows that are all zero

  constexpr auto parse(fmt::format_parse_context& ctx) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it == 'a') {
      all_rows = true;
      ++it;
    }
    return it;
  }

  template <class FormatContext>
  auto format(const sydra::alloc::Stats& s, FormatContext& ctx) const {
    namespace sa = sydra::alloc;
    auto out = ctx.out();
    out = fmt::format_to(out, "sydra-alloc stats v{} (mode {})\n", s.version, s.mode);
    if (s.has_buckets) {
      // The lock columns are lock.<field>; the threshold is the same for every bucket.
      out = fmt::format_to(out,
                           "buckets (threads without a shard: per-CPU caches, then a lock per batch; lock.threshold_ns "
                           "{})\n",
                           s.buckets.empty() ? 0 : s.buckets.front().lock.threshold_ns);
      out = fmt::format_to(out, "{:>6} {:>12} {:>12} {:>9} {:>10} {:>8} {:>8} {:>7} {:>6} {:>11} {:>10} {:>9} {:>10} {:>11} {:>10} {:>12}\n",
                           "size", "allocations", "frees", "in_use", "high_water", "refills", "flushes", "cached",
                           "slabs", "free_blocks", "lock.acq", "contended", "wait_ns", "max_wait_ns", "hold_ns",
                           "hold_samples");
      for (const auto& b : s.buckets) {
        // All zero: nothing allocated, no slab, the lock never taken (every
        // other counter of the row implies one of these).
        if (!all_rows && b.allocations == 0 && b.slabs == 0 && b.lock.acquisitions == 0) continue;
        out = fmt::format_to(out, "{:>6} {:>12} {:>12} {:>9} {:>10} {:>8} {:>8} {:>7} {:>6} {:>11} {:>10} {:>9} {:>10} {:>11} {:>10} {:>12}\n",
                             b.size, b.allocations, b.frees, b.in_use, b.high_water, b.refills, b.flushes, b.cached,
                             b.slabs, b.free_blocks, b.lock.acquisitions, b.lock.contended, b.lock.wait_ns,
                             b.lock.max_wait_ns, b.lock.hold_ns, b.lock.hold_samples);
      }
    }
    if (s.has_fallback) {
      const auto& f = s.fallback;
      out = fmt::format_to(out,
                           "fallback: allocs {} frees {} resizes {} remaps {} blocks_live {} bytes_live {}{}\n",
                           f.allocs, f.frees, f.resizes, f.remaps, f.blocks_live, f.bytes_live,
                           f.counts_underflow ? " COUNTS_UNDERFLOW" : "");
      out = fmt::format_to(out, "{:>9}", "size <=");
      for (auto b : sa::FallbackStats::bounds) out = fmt::format_to(out, " {:>8}", b);
      out = fmt::format_to(out, " {:>8}\n{:>9}", "larger", "sizes");
      for (auto c : f.sizes) out = fmt::format_to(out, " {:>8}", c);
      out = fmt::format_to(out, "\n");
    }
    if (s.has_shards) {
      const auto& h = s.shards;
      out = fmt::format_to(out,
                           "shards: shard_count {} | alloc_hits {} alloc_misses {} | deferred_total {} "
                           "reclaimed_total {} backlog {} in_transit {}\n",
                           h.shard_count, h.alloc_hits, h.alloc_misses, h.deferred_total, h.reclaimed_total,
                           h.backlog, h.in_transit);
      if (s.has_epochs) {
        out = fmt::format_to(out,
                             "epochs: current_epoch {} min_pinned_epoch {} pinned_threads {} | retired {} "
                             "retired_pending {}\n",
                             h.current_epoch, h.min_pinned_epoch, h.pinned_threads, h.retired, h.retired_pending);
      }
      out = fmt::format_to(out, "{:>6} {:>6} {:>12} {:>9} {:>14} | in_use by class:", "index", "owned", "alloc_hits",
                           "backlog", "reserved_bytes");
      for (auto size : s.classes) out = fmt::format_to(out, " {:>7}", size);
      out = fmt::format_to(out, "\n");
      for (const auto& sh : h.shards) {
        if (!all_rows && sh.alloc_hits == 0 && sh.backlog == 0 && sh.reserved_bytes == 0 && !sh.owned) continue;
        out = fmt::format_to(out, "{:>6} {:>6} {:>12} {:>9} {:>14} | {:>16}", sh.index, sh.owned ? "yes" : "no",
                             sh.alloc_hits, sh.backlog, sh.reserved_bytes, "");
        for (const auto& c : sh.classes) out = fmt::format_to(out, " {:>7}", c.in_use);
        out = fmt::format_to(out, "\n");
      }
    }
    if (s.has_memory) {
      const auto& m = s.memory;
      out = fmt::format_to(out,
                           "memory: reserved_bytes {} committed_bytes {} in_use_bytes {} retained_bytes {} "
                           "(retain_budget_bytes {}) decommitted_bytes {} metadata_bytes {} chunks {} | "
                           "slabs_reused_across_classes {} decommits {} chunks_released {} oom_retries {}\n",
                           m.reserved_bytes, m.committed_bytes, m.in_use_bytes, m.retained_bytes,
                           m.retain_budget_bytes, m.decommitted_bytes, m.metadata_bytes, m.chunks,
                           m.slabs_reused_across_classes, m.decommits, m.chunks_released, m.oom_retries);
    }
    for (const std::string& line : sa::read_stats(s)) out = fmt::format_to(out, "reading: {}\n", line);
    return out;
  }
};
