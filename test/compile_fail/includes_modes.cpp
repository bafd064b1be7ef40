// Compiled against a hand-made config.hpp (see bad_config/): must not build.
#include <sydra/alloc/modes.hpp>

int main() { return sydra::alloc::is_small_pool ? 0 : 1; }
