// calloc of 1 MiB blocks, for the real-program runs and their benchmark
// (programs.sh): a block that was written and freed must come back from
// calloc all zero, whether it is fresh from the kernel or reused. Two
// shapes: one block at a time (calloc, write, free), and 64 live at once.
// Prints what it checked; exits 1 at the first nonzero byte.
//   calloc-big [rounds]
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr std::size_t block = std::size_t{1} << 20;

bool zero_then_dirty(unsigned char* p, unsigned salt) {
  // Every 512th byte and the last: a missed clear shows on any page.
  for (std::size_t i = salt % 512; i < block; i += 512)
    if (p[i] != 0) return false;
  if (p[block - 1] != 0) return false;
  std::memset(p, 0xa5 ^ static_cast<int>(salt & 0xff), block);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned rounds = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 1000;
  unsigned long checked = 0;
  for (unsigned r = 0; r < rounds; ++r) {
    auto* p = static_cast<unsigned char*>(std::calloc(1, block));
    if (p == nullptr || !zero_then_dirty(p, r)) {
      std::printf("calloc-big: block %u not zero\n", r);
      return 1;
    }
    std::free(p);
    ++checked;
  }
  unsigned char* live[64];
  for (unsigned r = 0; r < rounds / 64; ++r) {
    for (unsigned i = 0; i < 64; ++i) {
      live[i] = static_cast<unsigned char*>(std::calloc(16, block / 16));
      if (live[i] == nullptr || !zero_then_dirty(live[i], r * 64 + i)) {
        std::printf("calloc-big: live block %u of round %u not zero\n", i, r);
        return 1;
      }
      ++checked;
    }
    for (unsigned i = 0; i < 64; ++i) std::free(live[i]);
  }
  std::printf("calloc-big: %lu blocks of 1 MiB, each zero when handed out\n", checked);
  return 0;
}
