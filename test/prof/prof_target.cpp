// A program for the reader test (pprof_reader.sh): run with
// libsydra-malloc.so preloaded and SYDRA_ALLOC_PROF set, it holds 48 MiB
// from hold_the_most() and 6 MiB from hold_less() at exit, asks for a
// profile on demand (sydra_alloc_prof_dump, found with dlsym so that the
// program also runs without the library) and raises SIGUSR2 once.
//   prof_target DUMP_PATH
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

extern "C" __attribute__((noinline)) void hold_the_most(std::vector<std::unique_ptr<char[]>>& out) {
  for (int i = 0; i < 48 * 256; ++i) out.emplace_back(new char[4096]);  // 48 MiB in 4 KiB blocks
}
extern "C" __attribute__((noinline)) void hold_less(std::vector<std::unique_ptr<char[]>>& out) {
  for (int i = 0; i < 6 * 16; ++i) out.emplace_back(new char[65536]);  // 6 MiB in 64 KiB blocks
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: prof_target DUMP_PATH\n");
    return 2;
  }
  std::vector<std::unique_ptr<char[]>> most, less;
  most.reserve(48 * 256);
  less.reserve(6 * 16);
  hold_the_most(most);
  hold_less(less);
  using Dump = int (*)(const char*);
  auto dump = reinterpret_cast<Dump>(dlsym(RTLD_DEFAULT, "sydra_alloc_prof_dump"));
  if (dump == nullptr || dump(argv[1]) != 0) {
    std::fprintf(stderr, "prof_target: sydra_alloc_prof_dump is missing or failed\n");
    return 1;
  }
  ::raise(SIGUSR2);  // the library writes PATH.1
  std::exit(0);  // main's locals are not destroyed: the blocks are live when the exit profile is written
}
