// pal/libc_symbols.hpp on glibc: a symbol lookup in libc.so.6's own dynamic
// symbol table, through dl_iterate_phdr and the GNU hash table (DT_GNU_HASH),
// which every glibc since 2.5 is built with.
#include <sydra/alloc/pal/libc_symbols.hpp>

#include <elf.h>
#include <gnu/libc-version.h>
#include <link.h>

#include <cstdint>
#include <cstring>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace pal {
namespace {

struct Lookup {
  const char* name;
  std::uintptr_t marker;  // an address inside the C library
  void* found;
};

std::uint32_t gnu_hash(const char* s) noexcept {
  std::uint32_t h = 5381;
  for (; *s != '\0'; ++s) h = h * 33 + static_cast<unsigned char>(*s);
  return h;
}

bool contains(const dl_phdr_info* info, std::uintptr_t addr) noexcept {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && addr >= start && addr - start < ph.p_memsz) return true;
  }
  return false;
}

// The loader relocates the address entries of a loaded object's dynamic
// section in place on most targets, but not on all: an entry below the load
// address is still an offset.
template <class T>
const T* dyn_ptr(const dl_phdr_info* info, ElfW(Addr) p) noexcept {
  return reinterpret_cast<const T*>(p < info->dlpi_addr ? p + info->dlpi_addr : p);
}

void* find_in(const dl_phdr_info* info, const char* name) noexcept {
  const ElfW(Dyn)* dyn = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) {
      dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    }
  }
  if (dyn == nullptr) return nullptr;
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  const std::uint32_t* hash = nullptr;
  const ElfW(Half)* versym = nullptr;
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    switch (dyn->d_tag) {
      case DT_SYMTAB: symtab = dyn_ptr<ElfW(Sym)>(info, dyn->d_un.d_ptr); break;
      case DT_STRTAB: strtab = dyn_ptr<char>(info, dyn->d_un.d_ptr); break;
      case DT_GNU_HASH: hash = dyn_ptr<std::uint32_t>(info, dyn->d_un.d_ptr); break;
      case DT_VERSYM: versym = dyn_ptr<ElfW(Half)>(info, dyn->d_un.d_ptr); break;
      default: break;
    }
  }
  if (symtab == nullptr || strtab == nullptr || hash == nullptr) return nullptr;

  // GNU hash: nbuckets, symoffset, bloom words, bloom shift, the bloom
  // filter, the buckets, then one chain word per symbol from symoffset on
  // (the hash with bit 0 marking a chain's end).
  const std::uint32_t nbuckets = hash[0], symoffset = hash[1], bloom_words = hash[2];
  const auto* buckets = reinterpret_cast<const std::uint32_t*>(
      reinterpret_cast<const ElfW(Addr)*>(hash + 4) + bloom_words);
  const std::uint32_t* chain = buckets + nbuckets;
  const std::uint32_t h = gnu_hash(name);
  std::uint32_t idx = buckets[h % nbuckets];
  if (idx < symoffset) return nullptr;
  for (;; ++idx) {
    const std::uint32_t ch = chain[idx - symoffset];
    const ElfW(Sym)& sym = symtab[idx];
    // The default version only: a hidden version (bit 15 of versym) is an
    // old ABI kept for old binaries.
    const bool hidden = versym != nullptr && (versym[idx] & 0x8000) != 0;
    if ((ch | 1) == (h | 1) && !hidden && sym.st_shndx != SHN_UNDEF && ELF64_ST_TYPE(sym.st_info) == STT_FUNC &&
        std::strcmp(strtab + sym.st_name, name) == 0) {
      return reinterpret_cast<void*>(info->dlpi_addr + sym.st_value);
    }
    if ((ch & 1) != 0) return nullptr;
  }
}

int visit(dl_phdr_info* info, std::size_t, void* arg) noexcept {
  auto* q = static_cast<Lookup*>(arg);
  if (!contains(info, q->marker)) return 0;
  q->found = find_in(info, q->name);
  return 1;
}

}  // namespace

void* find_libc_function(const char* name) noexcept {
  // gnu_get_libc_version is glibc's alone: no other malloc exports it, so
  // the object holding it is the C library.
  Lookup q{name, reinterpret_cast<std::uintptr_t>(&::gnu_get_libc_version), nullptr};
  ::dl_iterate_phdr(&visit, &q);
  return q.found;
}

}  // namespace pal
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
