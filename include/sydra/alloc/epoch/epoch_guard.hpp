// EpochGuard: an epoch pin as a scope, like crossbeam's Guard. Movable, not
// copyable; the pin ends when the last owner of it goes out of scope.
//
//   if (auto g = handle.pin()) { /* read the lock-free structure */ }
//   else std::puts(g.why());   // not pinned: do not read
//
// A guard is empty when the policy has no epochs, when the handle has no
// shard manager (allocator_shards = 0), or when this thread could not take
// part (no memory for its epoch slot, or the thread is exiting); why() says
// which. Every handle has pin(), so code written for any policy compiles and
// asks the guard.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class Handle>
class EpochGuard {
 public:
  explicit EpochGuard(Handle& h) noexcept : h_(&h) {
    if constexpr (Handle::has_epochs) epoch_ = h.enter_epoch();
  }
  EpochGuard(EpochGuard&& o) noexcept : h_(o.h_), epoch_(std::exchange(o.epoch_, std::nullopt)) {}
  EpochGuard& operator=(EpochGuard&& o) noexcept {
    if (this != &o) {
      release();
      h_ = o.h_;
      epoch_ = std::exchange(o.epoch_, std::nullopt);
    }
    return *this;
  }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;
  ~EpochGuard() { release(); }

  explicit operator bool() const noexcept { return epoch_.has_value(); }
  // The epoch this thread is pinned at. Precondition: the guard holds a pin.
  std::uint64_t epoch() const noexcept { return *epoch_; }
  const char* why() const noexcept {
    if (epoch_) return "pinned";
    if constexpr (!Handle::has_epochs) {
      return "not pinned: the policy has no epochs (opt in with ThreadShards<ShardFeatures{.epochs = true}>)";
    } else {
      if (!h_->shards().running()) return "not pinned: the handle runs no shard manager (allocator_shards = 0)";
      return "not pinned: this thread could not take an epoch slot (out of memory, or the thread is exiting)";
    }
  }
  // Ends the pin early.
  void release() noexcept {
    if constexpr (Handle::has_epochs) {
      if (epoch_) h_->leave_epoch(*std::exchange(epoch_, std::nullopt));
    }
  }

 private:
  Handle* h_;
  std::optional<std::uint64_t> epoch_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
