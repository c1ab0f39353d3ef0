/*
 * latency.h - round-trip statistics shared by the C examples and the
 * Unix-socket baseline, so that both print percentiles the same way.
 * Header-only (static functions); plain C11, no goipc dependency.
 */
#ifndef GOIPC_EXAMPLES_LATENCY_H
#define GOIPC_EXAMPLES_LATENCY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static uint64_t lat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int lat_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples (p in [0, 100]). */
static uint64_t lat_percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/*
 * Sorts samples (ns) and prints, for `label`:
 *   round trip: min 1.02 us  p50 1.31 us  p90 ...  max ... us
 *   throughput: N round trips/s
 *   p50_ns=1310 p90_ns=... p99_ns=... p999_ns=... (machine-readable)
 */
static void lat_report(FILE *f, uint64_t *samples, size_t n, uint64_t elapsed_ns)
{
    if (n == 0)
        return;
    qsort(samples, n, sizeof *samples, lat_cmp);
    uint64_t p50 = lat_percentile(samples, n, 50), p90 = lat_percentile(samples, n, 90),
             p99 = lat_percentile(samples, n, 99), p999 = lat_percentile(samples, n, 99.9);
    fprintf(f, "round trip: min %.2f us  p50 %.2f us  p90 %.2f us  p99 %.2f us  p99.9 %.2f us  max %.2f us\n",
            samples[0] / 1e3, p50 / 1e3, p90 / 1e3, p99 / 1e3, p999 / 1e3, samples[n - 1] / 1e3);
    if (elapsed_ns > 0)
        fprintf(f, "throughput: %.0f round trips/s\n", (double)n * 1e9 / (double)elapsed_ns);
    fprintf(f, "p50_ns=%llu p90_ns=%llu p99_ns=%llu p999_ns=%llu\n", (unsigned long long)p50,
            (unsigned long long)p90, (unsigned long long)p99, (unsigned long long)p999);
}

#endif
