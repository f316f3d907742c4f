# Offline stand-in for @rules_java: re-exports the native Java rules that @bazel_tools' BUILD files
# load from here (Bazel 4.2.3 loads its Java toolchains even for C++-only builds).
java_binary = native.java_binary
java_import = native.java_import
java_runtime = native.java_runtime
java_toolchain = native.java_toolchain
