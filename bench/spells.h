/* spells.h - measures how steady each CPU's vector throughput is, so that
 * a bench's latencies can be read against the machine's state: on a
 * shared VM a busy hyperthread sibling slows a CPU by 2x for 10 ms to
 * seconds at a time.  Linux (pins a thread to each CPU in turn). */
#ifndef BP_BENCH_SPELLS_H
#define BP_BENCH_SPELLS_H

#include <stdio.h>

/* Times a fixed vector loop in 10 ms windows for `seconds` on each online
 * CPU alone (up to 8), then on all at once, and prints to out the share
 * of windows that ran at least 1.4x slower than that CPU's fastest, with
 * their median slow-down.  -1 when out of memory. */
int bp_bench_spells(FILE *out, double seconds);

#endif
