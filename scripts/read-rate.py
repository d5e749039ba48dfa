#!/usr/bin/env python3
# The best of 4 sums of a 2 GiB int64 array (numpy, one thread): a sequential read rate of this process, GB/s.
# Several at once (`for i in $(seq 8); do python3 scripts/read-rate.py & done; wait`) share the host's memory.
import numpy as np, time
a = np.ones(1 << 28, dtype=np.int64)  # 2 GiB
a.sum()
best = 0
for _ in range(4):
    t = time.perf_counter(); a.sum(); dt = time.perf_counter() - t
    best = max(best, a.nbytes / dt / 1e9)
print(f"{best:.1f}")
