"""Quiet: a pool's workers sit idle, waiting for work, for 2 s."""

import time
from concurrent.futures import ThreadPoolExecutor

with ThreadPoolExecutor(max_workers=4) as pool:
    print(sum(pool.map(abs, range(-8, 0))))
    time.sleep(2)  # the workers wait for work meanwhile
    print(pool.submit(abs, -1).result(timeout=10))
