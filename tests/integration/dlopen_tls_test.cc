// Libraries dlopen()ed after threads exist: their initial-exec TLS must be initialised in every
// existing thread (ld.so does so only for threads glibc created), their TLS stays per thread, and
// the program's own library search (RUNPATH, $ORIGIN) is unchanged by the interposed dlopen.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

using Getter = int (*)();
using Setter = void (*)(int);

std::string PluginPath() {
  // The test runs in its runfiles tree; the plugin is a data dependency of the binary.
  return "tests/integration/libtls_plugin.so";
}

TEST(DlopenTls, ThreadsThatExistedBeforeDlopenSeeInitialisedTls) {
  constexpr int kThreads = 24;
  std::atomic<bool> loaded{false};
  std::atomic<int> bad{0};
  Getter ie_get = nullptr, gd_get = nullptr;
  Setter set = nullptr;
  struct Arg {
    int index;
    std::atomic<bool>* loaded;
    std::atomic<int>* bad;
    Getter* ie_get;
    Getter* gd_get;
    Setter* set;
  };
  std::vector<pthread_t> threads(kThreads);
  std::vector<Arg> args(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    args[i] = {i, &loaded, &bad, &ie_get, &gd_get, &set};
    ASSERT_EQ(pthread_create(&threads[i], nullptr, [](void* p) -> void* {
      auto* a = static_cast<Arg*>(p);
      while (!a->loaded->load()) usleep(200);
      if ((*a->ie_get)() != 42 || (*a->gd_get)() != 7) (*a->bad)++;
      (*a->set)(1000 + a->index);
      for (int k = 0; k < 5; ++k) {
        sched_yield();
        usleep(100);
        if ((*a->ie_get)() != 1000 + a->index || (*a->gd_get)() != 1000 + a->index) (*a->bad)++;
      }
      return nullptr;
    }, &args[i]), 0);
  }
  usleep(5000);  // let them all start and wait
  void* plugin = dlopen(PluginPath().c_str(), RTLD_NOW);
  ASSERT_NE(plugin, nullptr) << dlerror();
  ie_get = reinterpret_cast<Getter>(dlsym(plugin, "plugin_ie_get"));
  gd_get = reinterpret_cast<Getter>(dlsym(plugin, "plugin_gd_get"));
  set = reinterpret_cast<Setter>(dlsym(plugin, "plugin_set"));
  ASSERT_TRUE(ie_get && gd_get && set);
  EXPECT_EQ(ie_get(), 42);
  loaded = true;
  for (pthread_t t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(ie_get(), 42);  // the main thread's copy is its own

  // A thread created after the load gets the initial image too.
  pthread_t late;
  ASSERT_EQ(pthread_create(&late, nullptr, [](void* p) -> void* {
    return reinterpret_cast<void*>(static_cast<intptr_t>((*static_cast<Getter*>(p))()));
  }, &ie_get), 0);
  void* value;
  ASSERT_EQ(pthread_join(late, &value), 0);
  EXPECT_EQ(reinterpret_cast<intptr_t>(value), 42);
}

TEST(DlopenTls, DlopenSearchesTheCallersPaths) {
  // This binary's RUNPATH (set by Bazel) is what lets a bare soname of one of its dependencies be
  // found; with the interposer as the "caller" the search would use the shim's paths instead.
  // libgtest's soname resolves through the system paths either way, so use dlopen's own origin
  // rule: "$ORIGIN" expands to the directory of the calling object.
  std::string self_dir;
  {
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    ASSERT_GT(n, 0);
    path[n] = '\0';
    self_dir = path;
    self_dir.resize(self_dir.rfind('/'));
  }
  void* plugin = dlopen("$ORIGIN/libtls_plugin.so", RTLD_NOW);
  bool beside_binary = access((self_dir + "/libtls_plugin.so").c_str(), F_OK) == 0;
  if (beside_binary) {
    EXPECT_NE(plugin, nullptr) << dlerror();
  } else {
    GTEST_SKIP() << "the plugin is not beside the binary in this layout";
  }
}

}  // namespace
}  // namespace vthread_test
