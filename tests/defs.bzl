"""Test macros: every test program runs natively and preloaded with //:libvthread.so.

The test programs are ordinary pthread programs that never link vthread. Each variant is an sh_test
running tests/run_test.sh; the vthread variants set LD_PRELOAD to the absolute path of the built
library, VTHREAD_CARRIERS, and VTHREAD_EXPECT_FIBERS=1 (so a test knows it must be running as fibers).

  vthread_gtest(name, srcs, ...)          gtest cases, linked with //third_party:gtest_main
  vthread_program_test(name, srcs, ...)   plain C/C++ main(); passes when it exits with expect_exit
  vthread_binary_test(name, binary, ...)  an existing cc_binary, run with args like the above

The first two create NAME_bin (the program); all three create NAME_native (if native), NAME_vthread_cC for each C in carriers,
and a test_suite NAME holding the variants. args, env, size, timeout and tags apply to every variant.
"""

# The macros' `native` parameter shadows the module of that name inside them.
_cc_binary = native.cc_binary
_sh_test = native.sh_test
_test_suite = native.test_suite

_RUNNER = "//tests:run_test.sh"
_LIB = "//:libvthread.so"

def _variants(name, program, args, carriers, native, expect_exit, size, timeout, env, tags):
    runs = {}  # test name -> (preload, extra env)
    if native:
        runs[name + "_native"] = ("none", {})
    for c in carriers:
        runs[name + "_vthread_c" + str(c)] = ("$(rootpath %s)" % _LIB, {
            "VTHREAD_CARRIERS": str(c),
            "VTHREAD_EXPECT_FIBERS": "1",
        })
    for test, (preload, run_env) in runs.items():
        test_env = dict(env)
        test_env.update(run_env)
        _sh_test(
            name = test,
            srcs = [_RUNNER],
            args = [str(expect_exit), preload, "$(rootpath %s)" % program] + args,
            data = [program, _LIB],
            env = test_env,
            size = size,
            timeout = timeout,
            tags = tags,
        )

    # A test_suite's tags filter its tests, so it gets none but "manual" (which keeps //... from
    # expanding it into tests that were tagged manual).
    _test_suite(
        name = name,
        tests = [":" + t for t in runs],
        tags = ["manual"] if "manual" in tags else [],
    )

def vthread_gtest(name, srcs, deps = [], copts = [], data = [], carriers = [1, 2], native = True, size = "medium", timeout = None, env = {}, tags = []):
    """gtest cases; gtest writes its XML report to Bazel's XML_OUTPUT_FILE by itself."""
    _cc_binary(
        name = name + "_bin",
        srcs = srcs,
        deps = ["//third_party:gtest_main"] + deps,
        copts = copts,
        data = data,
        linkopts = ["-pthread"],
        testonly = True,
        tags = tags,
    )
    _variants(name, ":" + name + "_bin", [], carriers, native, 0, size, timeout, env, tags)

def vthread_program_test(name, srcs, deps = [], copts = [], args = [], carriers = [1, 2], native = True, expect_exit = 0, size = "medium", timeout = None, env = {}, tags = []):
    """A C or C++ program whose exit code is the result; args are passed to it."""
    _cc_binary(
        name = name + "_bin",
        srcs = srcs,
        deps = deps,
        copts = copts,
        linkopts = ["-pthread"],
        testonly = True,
        tags = tags,
    )
    _variants(name, ":" + name + "_bin", args, carriers, native, expect_exit, size, timeout, env, tags)

def vthread_binary_test(name, binary, args = [], carriers = [1, 2], native = True, expect_exit = 0, size = "medium", timeout = None, env = {}, tags = []):
    """An existing program (a cc_binary label) whose exit code is the result; args are passed to it."""
    _variants(name, binary, args, carriers, native, expect_exit, size, timeout, env, tags)
