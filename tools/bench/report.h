// bench --report DIR: the benchmark table as Markdown plus a bar chart of the ratios, with the wall
// times of real programs (parallel compressors, sort, our Benchmarks Game programs, sysbench) run
// natively and under vthread beside the micro benchmarks.
#ifndef VTHREAD_TOOLS_BENCH_REPORT_H_
#define VTHREAD_TOOLS_BENCH_REPORT_H_

#include <functional>
#include <string>
#include <vector>

namespace bench {

// One row: a lower-is-better value natively and under vthread. failed: why there is no ratio.
struct ReportEntry {
  std::string label;
  double native = 0;
  double vthread = 0;
  std::string unit;
  std::string failed;
};

// Runs `shell_command` (for /bin/sh -c) natively or under vthread; returns its wall time in
// seconds, or sets *failed.
using TimeCommand = std::function<double(const std::string& shell_command, bool vthread, std::string* failed)>;

struct ProgramPaths {
  std::string corpus_gen, thread_ring, chameneos;  // built by //tests/compat; empty: not found
  std::string scratch_dir;                         // for the generated corpus
};

// Times the real programs: median of `repeat` runs each way.
std::vector<ReportEntry> TimePrograms(const ProgramPaths& paths, int repeat, const TimeCommand& time);

// Writes DIR/bench.md (header lines, then the table) and DIR/bench.png (gnuplot, log scale). The
// chart is skipped with a note on stderr when gnuplot is missing. Returns false on a write error.
bool WriteReport(const std::string& dir, const std::vector<std::string>& header,
                 const std::vector<ReportEntry>& entries);

}  // namespace bench

#endif  // VTHREAD_TOOLS_BENCH_REPORT_H_
