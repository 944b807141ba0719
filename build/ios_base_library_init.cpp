// GCC 13 emits a call to std::ios_base_library_init() (GLIBCXX_3.4.32) where older compilers
// constructed a static std::ios_base::Init. Doing exactly that keeps the old libstdc++ happy.
#include <ios>
namespace std { void ios_base_library_init() { static ios_base::Init init; } }
