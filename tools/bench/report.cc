#include "tools/bench/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>

namespace bench {
namespace {

struct Program {
  const char* label;
  std::string command;  // for /bin/sh -c; CORPUS and LINES name the generated inputs
};

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string Quoted(const std::string& s) { return "'" + Replace(s, "'", "'\\''") + "'"; }

}  // namespace

std::vector<ReportEntry> TimePrograms(const ProgramPaths& paths, int repeat, const TimeCommand& time) {
  std::vector<Program> programs;
  const std::string corpus = paths.scratch_dir + "/corpus", lines = paths.scratch_dir + "/lines";
  if (!paths.corpus_gen.empty()) {
    programs.push_back({"pigz -p 4, 16 MiB", "exec pigz -c -p 4 < CORPUS > /dev/null"});
    programs.push_back({"xz -1 -T 4, 16 MiB", "exec xz -c -1 -T 4 --block-size=1MiB < CORPUS > /dev/null"});
    programs.push_back({"zstd -3 -T4, 16 MiB", "exec zstd -q -c -3 -T4 -B1MiB < CORPUS > /dev/null"});
    programs.push_back({"lbzip2 -n 4, 16 MiB", "exec lbzip2 -c -n 4 < CORPUS > /dev/null"});
    programs.push_back({"sort --parallel=4, 2.4M lines", "LC_ALL=C exec sort --parallel=4 -S 256M < LINES > /dev/null"});
  }
  if (!paths.thread_ring.empty()) {
    programs.push_back({"thread-ring (mutex), 503 threads, 10^6 hops", "exec " + Quoted(paths.thread_ring) + " mutex 1000000 > /dev/null"});
  }
  if (!paths.chameneos.empty()) {
    programs.push_back({"chameneos-redux (cond), 10^6 meetings", "exec " + Quoted(paths.chameneos) + " cond 1000000 > /dev/null"});
  }
  programs.push_back({"sysbench threads, 16 threads", "exec sysbench threads --threads=16 --events=20000 --time=0 run > /dev/null"});
  programs.push_back({"sysbench mutex, 16 threads", "exec sysbench mutex --threads=16 --mutex-locks=50000 --time=0 run > /dev/null"});

  std::vector<ReportEntry> entries;
  if (!paths.corpus_gen.empty()) {
    std::string failed;
    time(Quoted(paths.corpus_gen) + " 16384 7 > " + Quoted(corpus) + " && tr ' ' '\\n' < " + Quoted(corpus) + " > " + Quoted(lines), false, &failed);
    if (!failed.empty()) {
      fprintf(stderr, "bench --report: generating the corpus failed: %s\n", failed.c_str());
      return entries;
    }
  }
  for (const Program& p : programs) {
    ReportEntry e{p.label, 0, 0, "s", ""};
    const std::string command = Replace(Replace(p.command, "CORPUS", Quoted(corpus)), "LINES", Quoted(lines));
    for (bool vthread : {false, true}) {
      std::vector<double> runs;
      for (int r = 0; r < repeat && e.failed.empty(); ++r) {
        std::string failed;
        fprintf(stderr, "[report] %-45s %-8s ", p.label, vthread ? "vthread" : "native");
        double seconds = time(command, vthread, &failed);
        fprintf(stderr, "%s\n", failed.empty() ? (std::to_string(seconds) + " s").c_str() : ("FAIL " + failed).c_str());
        if (!failed.empty()) e.failed = (vthread ? "vthread: " : "native: ") + failed;
        runs.push_back(seconds);
      }
      (vthread ? e.vthread : e.native) = e.failed.empty() ? Median(runs) : 0;
    }
    entries.push_back(e);
  }
  unlink(corpus.c_str());
  unlink(lines.c_str());
  return entries;
}

bool WriteReport(const std::string& dir, const std::vector<std::string>& header,
                 const std::vector<ReportEntry>& entries) {
  const std::string md = dir + "/bench.md", data = dir + "/bench.dat", png = dir + "/bench.png";
  FILE* f = fopen(md.c_str(), "w");
  if (f == nullptr) {
    perror(md.c_str());
    return false;
  }
  fprintf(f, "# vthread benchmarks: native vs vthread\n\n");
  for (const std::string& line : header) fprintf(f, "%s  \n", line.c_str());
  fprintf(f, "\nratio = native / vthread; every value is lower-is-better, so a ratio above 1 means "
             "vthread is faster.\n\n![ratios](bench.png)\n\n");
  fprintf(f, "| benchmark | native | vthread | unit | ratio |\n|---|---:|---:|---|---:|\n");
  FILE* d = fopen(data.c_str(), "w");
  if (d == nullptr) {
    perror(data.c_str());
    fclose(f);
    return false;
  }
  for (const ReportEntry& e : entries) {
    if (!e.failed.empty() || e.vthread <= 0) {
      fprintf(f, "| %s | | | | %s |\n", e.label.c_str(), e.failed.c_str());
      continue;
    }
    const double ratio = e.native / e.vthread;
    fprintf(f, "| %s | %.4g | %.4g | %s | %.2fx |\n", e.label.c_str(), e.native, e.vthread,
            e.unit.c_str(), ratio);
    fprintf(d, "\"%s\" %g\n", Replace(e.label, "\"", "'").c_str(), ratio);
  }
  fclose(d);
  fclose(f);

  // A horizontal-looking chart is hard in gnuplot 5.4; vertical bars with rotated labels and a log
  // axis (ratios run from below 1 to above 100) read well enough.
  const std::string script =
      "set terminal pngcairo size 1400,700 noenhanced\n"
      "set output " + Quoted(png) + "\n"
      "set title 'native time / vthread time (log scale; above 1: vthread faster)'\n"
      "set logscale y\nset grid ytics\nset style fill solid 0.8\nset boxwidth 0.7\n"
      "set xtics rotate by -40 left\nset bmargin 16\nset rmargin 30\nunset key\n"
      "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2\n"
      "plot " + Quoted(data) + " using 0:2:xtic(1) with boxes\n";
  FILE* g = popen("gnuplot 2>&1", "w");
  if (g == nullptr) {
    fprintf(stderr, "bench --report: cannot run gnuplot; no chart\n");
    return true;
  }
  fputs(script.c_str(), g);
  int status = pclose(g);
  unlink(data.c_str());
  if (status != 0) fprintf(stderr, "bench --report: gnuplot failed (install gnuplot-nox); no chart\n");
  return true;
}

}  // namespace bench
