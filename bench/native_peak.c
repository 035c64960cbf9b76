// The CPU's own limits, for comparison with what the CPU adapter (lavapipe) reaches: FMA
// throughput of 10 independent AVX2 chains per thread, and memcpy bandwidth of 32 MiB.
// Not part of any task (it needs a C compiler and an x86-64 CPU with AVX2 and FMA):
//
//   gcc -O3 -march=native -o /tmp/native_peak bench/native_peak.c -lpthread && /tmp/native_peak 2
//
// The argument is the number of threads (default 1).
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CHAINS = 10, TRIPS = 200000000 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *fma_chains(void *out) {
  __m256 a[CHAINS];
  for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps(i * 0.1f);
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-4f);
  for (long t = 0; t < TRIPS; t++) {
    for (int i = 0; i < CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
  }
  float s = 0, lane[8];
  for (int i = 0; i < CHAINS; i++) {
    _mm256_storeu_ps(lane, a[i]);
    s += lane[0];
  }
  *(float *)out = s;
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1;
  if (n < 1 || n > 64) n = 1;
  pthread_t th[64];
  float sink[64];
  double t0 = now();
  for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, fma_chains, &sink[i]);
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  double dt = now() - t0;
  // 8 lanes x 2 FLOPs per FMA.
  printf("%d thread(s): FMA %.1f GFLOP/s\n", n, n * (double)TRIPS * CHAINS * 16 / dt / 1e9);

  size_t bytes = (size_t)32 << 20;
  char *a = malloc(bytes), *b = malloc(bytes);
  memset(a, 1, bytes);
  memset(b, 2, bytes);
  double bestMs = 1e30;
  volatile char keep = 0;
  for (int r = 0; r < 5; r++) {
    double s = now();
    for (int i = 0; i < 8; i++) {
      memcpy(b, a, bytes);
      keep += b[i];
    }
    double ms = (now() - s) * 1e3 / 8;
    if (ms < bestMs) bestMs = ms;
  }
  printf("memcpy 32 MiB (one thread, read + write): %.2f GB/s\n", 2.0 * bytes / (bestMs / 1e3) / 1e9);
  free(a);
  free(b);
  return 0;
}
