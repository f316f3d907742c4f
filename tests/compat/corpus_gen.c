// corpus_gen KIB SEED: writes KIB KiB of deterministic, compressible text to stdout for the
// compressor tests: lines of words drawn from a fixed vocabulary with a skewed distribution, with a
// stretch of incompressible bytes every 256 KiB so that both kinds of block occur. The same
// arguments give the same bytes on every machine (splitmix64, no libc randomness).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t state;

static uint64_t next(void) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: corpus_gen KIB SEED\n");
    return 2;
  }
  const long long total = atoll(argv[1]) * 1024;
  state = strtoull(argv[2], NULL, 0);
  enum { kWords = 4096 };
  static char vocab[kWords][12];
  for (int w = 0; w < kWords; ++w) {
    int len = 2 + (int)(next() % 9);
    for (int i = 0; i < len; ++i) vocab[w][i] = (char)('a' + next() % 26);
    vocab[w][len] = '\0';
  }
  long long written = 0;
  int column = 0;
  while (written < total) {
    if (written % (256 * 1024) < 64 && written + 4096 <= total) {
      for (int i = 0; i < 4096; ++i) putchar((int)(next() & 0xff));
      written += 4096;
      continue;
    }
    // Squaring the uniform draw favours low indices: a Zipf-like word frequency.
    uint64_t r = next() % kWords;
    const char* word = vocab[(r * r) / kWords];
    for (const char* c = word; *c != '\0' && written < total; ++c, ++written, ++column) putchar(*c);
    if (written < total) {
      putchar(column > 72 ? '\n' : ' ');
      column = column > 72 ? 0 : column + 1;
      ++written;
    }
  }
  return 0;
}
