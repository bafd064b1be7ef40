// A multithreaded new/delete churn for the real-program runs (run.sh): every
// thread allocates strings, vectors, map nodes and raw blocks of 8 B..64 KiB,
// hands half of them to the next thread to check and delete (a cross-thread
// free), and the output is a digest of the contents that does not depend on
// the interleaving. Same output and exit code under any malloc, or a failure.
//   churn [threads] [rounds] [seed]
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Block {
  std::uint64_t id;
  std::size_t len;
  std::unique_ptr<unsigned char[]> bytes;
};

unsigned char byte_of(std::uint64_t id, std::size_t i) { return static_cast<unsigned char>((id * 131 + i * 7) & 0xff); }

struct Mailbox {
  std::mutex mu;
  std::vector<Block> items;
};

}  // namespace

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 4;
  const unsigned rounds = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 200;
  const std::uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 42;
  std::fprintf(stderr, "churn: threads %u rounds %u seed %llu\n", threads, rounds,
               static_cast<unsigned long long>(seed));

  std::vector<Mailbox> boxes(threads);
  std::atomic<std::uint64_t> digest{0}, checked{0}, bad{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000003 + t);
      std::uint64_t local = 0, n = 0;
      for (unsigned r = 0; r < rounds; ++r) {
        std::vector<Block> mine;
        std::map<std::uint64_t, std::string> index;
        for (unsigned i = 0; i < 64; ++i) {
          const std::uint64_t id = (std::uint64_t{t} << 40) | (std::uint64_t{r} << 16) | i;
          const unsigned shift = static_cast<unsigned>(rng() % 14);
          const std::size_t len = 8 + rng() % ((std::size_t{8} << shift));
          Block b{id, len, std::make_unique<unsigned char[]>(len)};
          for (std::size_t k = 0; k < len; ++k) b.bytes[k] = byte_of(id, k);
          index.emplace(id, std::string(static_cast<std::size_t>(rng() % 200), static_cast<char>('a' + i % 26)));
          mine.push_back(std::move(b));
        }
        for (const auto& [id, s] : index) local += id ^ s.size();
        // Half go to the next thread, which checks and frees them.
        {
          Mailbox& next = boxes[(t + 1) % threads];
          std::lock_guard g(next.mu);
          for (std::size_t i = 0; i < mine.size(); i += 2) next.items.push_back(std::move(mine[i]));
        }
        std::vector<Block> inbox;
        {
          std::lock_guard g(boxes[t].mu);
          inbox.swap(boxes[t].items);
        }
        for (auto* list : {&mine, &inbox})
          for (const Block& b : *list) {
            if (!b.bytes) continue;
            for (std::size_t k = 0; k < b.len; ++k)
              if (b.bytes[k] != byte_of(b.id, k)) {
                bad.fetch_add(1);
                break;
              }
            local += b.id * 3 + b.len;
            ++n;
          }
      }
      digest.fetch_add(local);
      checked.fetch_add(n);
    });
  }
  for (auto& th : pool) th.join();
  for (Mailbox& b : boxes)  // what arrived after its owner's last round
    for (const Block& blk : b.items) {
      digest.fetch_add(blk.id * 3 + blk.len);
      checked.fetch_add(1);
    }
  std::printf("churn: %llu blocks checked, digest %016llx, corrupt %llu\n",
              static_cast<unsigned long long>(checked.load()), static_cast<unsigned long long>(digest.load()),
              static_cast<unsigned long long>(bad.load()));
  return bad.load() == 0 ? 0 : 1;
}
