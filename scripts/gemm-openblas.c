/* OpenBLAS comparison for scripts/bench-gemm-openblas.sh (benchmark only; the package never links it).
 * Times C(M,N) = op(A)·op(B) in row-major cblas_sgemm with the same layout as `gpt-native bench gemm`:
 * A stored (M,K) or (K,M) with transA, B stored (K,N) or (N,K) with transB, beta = 0.
 * Usage: gemm-openblas M N K transA(0|1) transB(0|1) [min_ms=300] [runs=9]
 * Prints one JSON line {"m","n","k","transA","transB","ms","gflops","threads"} with the median time.
 * Build: gcc -O2 scripts/gemm-openblas.c -o /tmp/gemm-openblas -lopenblas
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern int openblas_get_num_threads(void);

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: %s M N K transA transB [min_ms] [runs]\n", argv[0]); return 2; }
  int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]), ta = atoi(argv[4]), tb = atoi(argv[5]);
  double min_ms = argc > 6 ? atof(argv[6]) : 300;
  int runs = argc > 7 ? atoi(argv[7]) : 9;
  float *A = aligned_alloc(64, sizeof(float) * ((size_t)M * K + 16));
  float *B = aligned_alloc(64, sizeof(float) * ((size_t)K * N + 16));
  float *C = aligned_alloc(64, sizeof(float) * ((size_t)M * N + 16));
  unsigned s = 12345;
  for (size_t i = 0; i < (size_t)M * K; i++) { s = s * 1664525u + 1013904223u; A[i] = (s >> 8) * (2.0f / 16777216.0f) - 1; }
  for (size_t i = 0; i < (size_t)K * N; i++) { s = s * 1664525u + 1013904223u; B[i] = (s >> 8) * (2.0f / 16777216.0f) - 1; }
  for (size_t i = 0; i < (size_t)M * N; i++) C[i] = 0;
  int lda = ta ? M : K, ldb = tb ? K : N;
  CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  for (int w = 0; w < 2; w++) cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
  static double t[1000];
  int n = 0;
  double start = now_ms();
  while (n < 1000 && (n < runs || now_ms() - start < min_ms)) {
    double t0 = now_ms();
    cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
    t[n++] = now_ms() - t0;
  }
  qsort(t, n, sizeof(double), cmpd);
  double ms = t[n / 2];
  printf("{\"m\":%d,\"n\":%d,\"k\":%d,\"transA\":%s,\"transB\":%s,\"ms\":%.4f,\"gflops\":%.2f,\"threads\":%d}\n", M, N, K,
         ta ? "true" : "false", tb ? "true" : "false", ms, 2.0 * M * N * K / (ms * 1e6), openblas_get_num_threads());
  free(A); free(B); free(C);
  return 0;
}
