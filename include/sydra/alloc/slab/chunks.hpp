// SlabChunks<Regions>: a slab pool's address space. A chunk is a region from
// the RegionSource (4 MiB first, doubling up to a maximum), cut into 64 KiB
// slabs; its slabs' metadata sits in a separate dense array, so that a
// slab's own pages hold only blocks and can be decommitted whole. Fresh
// slabs (never handed out: address space only, nothing committed) are taken
// in address order from the newest chunk. A chunk goes back whole, its
// pagemap entries cleared first.
//
// No lock of its own: the pool's lock guards every call but decommit(),
// which the pool makes outside it (a madvise may take a while), as it did
// when it called the RegionSource itself.
#pragma once

#include <sydra/alloc/pal/os_memory.hpp>
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/regions.hpp>
#include <sydra/alloc/slab/sanitizer.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <RegionSource Regions>
class SlabChunks {
 public:
  struct Chunk {
    Chunk* next;
    char* base;
    std::size_t slabs;
    std::size_t meta_bytes;
    SlabMeta* metas;
  };

  static constexpr std::uint8_t no_class = 0xff;  // a fresh slab's last_class
  static constexpr bool takes_huge_pages = requires(Regions& r) { r.set_huge_pages(true); };
  // Whether a released region can be reserved again: a FixedArena's cannot
  // (its release is a no-op), so its chunks stay until the pool is destroyed.
  static constexpr bool releases_regions = [] {
    if constexpr (requires { Regions::reuses_released_regions; }) return Regions::reuses_released_regions;
    else return true;
  }();

  // The unit chunks come in: a slab, or a huge page when the source backs
  // chunks with them (a chunk that is not a whole number of huge pages
  // would leave its tail on small pages).
  static std::size_t granule(bool huge_pages) noexcept {
    return takes_huge_pages && huge_pages ? pal::huge_page_bytes : slab_bytes;
  }

  // first_bytes and max_bytes are multiples of granule(huge_pages). handle:
  // what each slab's metadata names as its owner.
  SlabChunks(const void* handle, std::size_t first_bytes, std::size_t max_bytes, bool huge_pages,
             const typename Regions::Options& regions) noexcept
      : handle_(handle), regions_(regions), granule_(granule(huge_pages)), max_bytes_(max_bytes),
        next_bytes_(first_bytes) {
    if constexpr (takes_huge_pages) regions_.set_huge_pages(huge_pages);
  }
  SlabChunks(const SlabChunks&) = delete;
  SlabChunks& operator=(const SlabChunks&) = delete;
  ~SlabChunks() {
    for (Chunk* c = chunks_; c != nullptr;) {
      Chunk* next = c->next;
      release(c);
      c = next;
    }
  }

  // The next fresh slab, reserving a chunk when the newest has none left;
  // nullptr when the region source and the pagemap are out of memory.
  SlabMeta* take_fresh() noexcept {
    if (fresh_ == nullptr || fresh_next_ == fresh_->slabs) {
      if (!add_chunk()) return nullptr;
    }
    return &fresh_->metas[fresh_next_++];
  }
  bool is_fresh(const Chunk& c, std::size_t i) const noexcept { return &c == fresh_ && i >= fresh_next_; }
  std::size_t fresh_left() const noexcept { return fresh_ != nullptr ? fresh_->slabs - fresh_next_ : 0; }

  // True when the slab's pages went back to the OS (false: a source that
  // cannot, a FixedArena). Outside the pool's lock.
  bool decommit(const SlabMeta& m) noexcept { return regions_.decommit(m.base, slab_bytes); }

  // Unlinks every chunk none of whose slabs is owned (and, with
  // keep_retained, none retained: committed and not fresh), each after
  // on_unlink(c), which may still ask is_fresh(); returns them linked
  // through next, for give_back().
  template <class OnUnlink>
  Chunk* unlink_empty(bool keep_retained, OnUnlink&& on_unlink) noexcept {
    Chunk* dead = nullptr;
    for (Chunk** link = &chunks_; *link != nullptr;) {
      Chunk* c = *link;
      if (!releasable(*c, keep_retained)) {
        link = &c->next;
        continue;
      }
      *link = c->next;
      on_unlink(*c);
      if (c == fresh_) fresh_ = nullptr;
      reserved_slabs_ -= c->slabs;
      metadata_bytes_ -= c->meta_bytes;
      ++released_;
      c->next = dead;
      dead = c;
    }
    return dead;
  }
  // Gives back what unlink_empty() returned. Returns the bytes of address space.
  std::size_t give_back(Chunk* dead) noexcept {
    std::size_t bytes = 0;
    for (Chunk* c = dead; c != nullptr;) {
      Chunk* next = c->next;
      bytes += c->slabs * slab_bytes;
      release(c);
      c = next;
    }
    return bytes;
  }

  const void* handle() const noexcept { return handle_; }
  const Chunk* first() const noexcept { return chunks_; }
  std::uint64_t reserved_slabs() const noexcept { return reserved_slabs_; }
  std::uint64_t metadata_bytes() const noexcept { return metadata_bytes_; }
  std::uint64_t reserved() const noexcept { return reserved_; }  // cumulative
  std::uint64_t released() const noexcept { return released_; }  // cumulative

 private:
  bool releasable(const Chunk& c, bool keep_retained) const noexcept {
    for (std::size_t i = 0; i < c.slabs; ++i) {
      const SlabMeta& m = c.metas[i];
      if (m.kind != SlabKind::empty) return false;
      if (keep_retained && m.committed && !is_fresh(c, i)) return false;
    }
    return true;
  }

  // Reserves a chunk, halving the request down to one slab (one huge page)
  // if the source cannot give the full size (a nearly full FixedArena), and
  // publishes its slabs in the pagemap.
  bool add_chunk() noexcept {
    const std::size_t g = granule_;
    for (std::size_t bytes = next_bytes_; bytes >= g; bytes = bytes / 2 / g * g) {
      void* region = regions_.reserve(bytes);
      if (region == nullptr) continue;
      const std::size_t slabs = bytes / slab_bytes;
      std::size_t meta_bytes = sizeof(Chunk) + slabs * sizeof(SlabMeta);
#if SYDRA_ALLOC_CHECKED
      meta_bytes += slabs * live_bitmap_words * sizeof(std::uint64_t);
#endif
      meta_bytes = (meta_bytes + pal::page_bytes - 1) / pal::page_bytes * pal::page_bytes;
      void* meta = pal::reserve(meta_bytes, pal::page_bytes);
      if (meta == nullptr) {
        regions_.release(region, bytes);
        return false;
      }
      auto* c = ::new (meta) Chunk{chunks_, static_cast<char*>(region), slabs, meta_bytes, nullptr};
      char* arrays = static_cast<char*>(meta) + ((sizeof(Chunk) + 63) & ~std::size_t{63});
      c->metas = reinterpret_cast<SlabMeta*>(arrays);
      for (std::size_t i = 0; i < slabs; ++i) {
        SlabMeta* m = ::new (&c->metas[i]) SlabMeta{};
        m->handle = handle_;
        m->base = c->base + i * slab_bytes;
        m->kind = SlabKind::empty;
        m->last_class = no_class;
#if SYDRA_ALLOC_CHECKED
        m->live = reinterpret_cast<std::atomic<std::uint64_t>*>(arrays + slabs * sizeof(SlabMeta)) +
                  i * live_bitmap_words;
#endif
      }
      if (!Pagemap::insert(c->base, slabs, c->metas)) {
        regions_.release(region, bytes);
        pal::release(meta, meta_bytes);
        return false;
      }
      track::on_new_region(c->base, bytes);  // poisoned until blocks are handed out
      chunks_ = c;
      ++reserved_;
      reserved_slabs_ += slabs;
      metadata_bytes_ += meta_bytes;
      fresh_ = c;
      fresh_next_ = 0;
      if (next_bytes_ < max_bytes_) next_bytes_ *= 2;
      return true;
    }
    return false;
  }

  // The pagemap first, so that no lookup finds the chunk's records once they
  // are gone; then the slabs' address space; then the records.
  void release(Chunk* c) noexcept {
    Pagemap::erase(c->base, c->slabs);
    track::on_release_region(c->base, c->slabs * slab_bytes);
    regions_.release(c->base, c->slabs * slab_bytes);
    pal::release(c, c->meta_bytes);
  }

  const void* handle_;
  Regions regions_;
  std::size_t granule_;
  std::size_t max_bytes_;
  std::size_t next_bytes_;
  Chunk* chunks_ = nullptr;
  Chunk* fresh_ = nullptr;
  std::size_t fresh_next_ = 0;
  std::uint64_t reserved_slabs_ = 0, reserved_ = 0, metadata_bytes_ = 0, released_ = 0;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
