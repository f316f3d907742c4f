// chameneos-redux, after the Computer Language Benchmarks Game specification: creatures of three
// colours meet pairwise at one meeting place N times in all; at each meeting both take the
// complement of the two colours. Prints the complement table, then for the 3-creature and the
// 10-creature runs: the colours, each creature's meetings and how often it met itself (spelled),
// and the total (spelled). Written here from the public specification.
//
//   chameneos VARIANT N
//     cond      the meeting place under a mutex; a waiting creature sleeps on its own condvar
//     sem       the meeting place under a semaphore; a waiting creature sleeps on its own semaphore
//     yield     a lock-free meeting place (compare-and-swap); a waiting creature spins on sched_yield
//     stack     cond, with stacks the program allocates (pthread_attr_setstack)
//     affinity  cond; main pins itself to one CPU and the creatures get an explicit CPU set
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum Colour { kBlue, kRed, kYellow };
static const char* const kNames[] = {"blue", "red", "yellow"};
static const char* variant;

static enum Colour Complement(enum Colour a, enum Colour b) {
  if (a == b) return a;
  return (enum Colour)(3 - a - b);
}

static void Spell(int n) {
  static const char* const kDigits[] = {"zero", "one", "two",   "three", "four",
                                        "five", "six", "seven", "eight", "nine"};
  char buf[32];
  snprintf(buf, sizeof buf, "%d", n);
  for (char* c = buf; *c; ++c) printf(" %s", kDigits[*c - '0']);
  printf("\n");
}

struct Creature {
  int id;
  enum Colour colour;
  int meetings, same;
  // Filled by the partner who found this creature waiting: its colour and id.
  enum Colour partner_colour;
  int partner_id;
  atomic_int met;  // yield: set by the partner
  pthread_cond_t cond;
  sem_t sem;
  pthread_t thread;
};

static struct {
  pthread_mutex_t mutex;
  sem_t guard;
  int left;  // meetings still to happen
  struct Creature* waiting;
  // yield: (left << 8) | (waiting id + 1), or 0 waiting
  atomic_long state;
} place;
static struct Creature* creatures;

static int LockFreeMeet(struct Creature* c, struct Creature** partner) {
  for (;;) {
    long s = atomic_load(&place.state);
    long left = s >> 8;
    int waiting = (int)(s & 0xff);
    if (left == 0) return 0;
    if (waiting == 0) {
      atomic_store(&c->met, 0);
      if (!atomic_compare_exchange_weak(&place.state, &s, (left << 8) | (c->id + 1))) continue;
      while (!atomic_load(&c->met)) sched_yield();
      *partner = NULL;
      return 1;
    }
    if (!atomic_compare_exchange_weak(&place.state, &s, (left - 1) << 8)) continue;
    *partner = &creatures[waiting - 1];
    return 1;
  }
}

static void* Live(void* arg) {
  struct Creature* c = arg;
  const int yield = strcmp(variant, "yield") == 0, sem = strcmp(variant, "sem") == 0;
  for (;;) {
    struct Creature* partner = NULL;
    if (yield) {
      if (!LockFreeMeet(c, &partner)) break;
    } else {
      sem ? sem_wait(&place.guard) : pthread_mutex_lock(&place.mutex);
      if (place.left == 0) {
        sem ? sem_post(&place.guard) : pthread_mutex_unlock(&place.mutex);
        break;
      }
      if (place.waiting == NULL) {
        place.waiting = c;
        if (sem) {
          sem_post(&place.guard);
          sem_wait(&c->sem);
        } else {
          while (place.waiting == c) pthread_cond_wait(&c->cond, &place.mutex);
          pthread_mutex_unlock(&place.mutex);
        }
      } else {
        partner = place.waiting;
        place.waiting = NULL;
        --place.left;
        if (sem) sem_post(&place.guard);
      }
    }
    if (partner != NULL) {
      // This creature completes the meeting: tell the waiting one who it met.
      partner->partner_colour = c->colour;
      partner->partner_id = c->id;
      enum Colour mine = c->colour;
      c->partner_id = partner->id;
      c->colour = Complement(mine, partner->colour);
      if (yield) {
        atomic_store(&partner->met, 1);
      } else if (sem) {
        sem_post(&partner->sem);
      } else {
        pthread_cond_signal(&partner->cond);
        pthread_mutex_unlock(&place.mutex);
      }
    } else {
      c->colour = Complement(c->colour, c->partner_colour);
    }
    ++c->meetings;
    if (c->partner_id == c->id) ++c->same;
  }
  return NULL;
}

static void Run(const enum Colour* colours, int n, int meetings, pthread_attr_t* attr) {
  for (int i = 0; i < n; ++i) printf(" %s", kNames[colours[i]]);
  printf("\n");
  creatures = calloc((size_t)n, sizeof *creatures);
  place.left = meetings;
  place.waiting = NULL;
  atomic_store(&place.state, (long)meetings << 8);
  for (int i = 0; i < n; ++i) {
    struct Creature* c = &creatures[i];
    c->id = i;
    c->colour = colours[i];
    pthread_cond_init(&c->cond, NULL);
    sem_init(&c->sem, 0, 0);
    if (strcmp(variant, "stack") == 0) {
      void* stack;
      if (posix_memalign(&stack, 4096, 64 * 1024) != 0) exit(1);
      pthread_attr_setstack(attr, stack, 64 * 1024);
    }
    int rc = pthread_create(&c->thread, attr, Live, c);
    if (rc != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(rc));
      exit(1);
    }
  }
  int total = 0;
  for (int i = 0; i < n; ++i) {
    pthread_join(creatures[i].thread, NULL);
    printf("%d", creatures[i].meetings);
    Spell(creatures[i].same);
    total += creatures[i].meetings;
  }
  Spell(total);
  printf("\n");
  free(creatures);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: chameneos cond|sem|yield|stack|affinity N\n");
    return 2;
  }
  variant = argv[1];
  const int meetings = atoi(argv[2]);
  pthread_mutex_init(&place.mutex, NULL);
  sem_init(&place.guard, 0, 1);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (strcmp(variant, "affinity") == 0) {
    cpu_set_t all, one;
    sched_getaffinity(0, sizeof all, &all);
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &all)) {
        CPU_SET(c, &one);
        break;
      }
    }
    if (sched_setaffinity(0, sizeof one, &one) != 0) perror("sched_setaffinity");
    pthread_attr_setaffinity_np(&attr, sizeof all, &all);
  }
  for (int a = kBlue; a <= kYellow; ++a) {
    for (int b = kBlue; b <= kYellow; ++b) {
      printf("%s + %s -> %s\n", kNames[a], kNames[b], kNames[Complement(a, b)]);
    }
  }
  printf("\n");
  static const enum Colour three[] = {kBlue, kRed, kYellow};
  static const enum Colour ten[] = {kBlue, kRed,    kYellow, kRed, kYellow,
                                    kBlue, kRed,    kYellow, kRed, kBlue};
  Run(three, 3, meetings, &attr);
  Run(ten, 10, meetings, &attr);
  return 0;
}
