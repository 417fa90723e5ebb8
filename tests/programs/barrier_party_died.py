"""A barrier that can never trip: one of its parties died before arriving.

Four shard loaders meet at a barrier before merging; the one given a bad
shard raises ``ValueError`` and never arrives, so the other three wait at
the barrier for ever.  The program gives up after 3 s.
"""

import threading

shards = ["a,b", "c,d", "e;f", "g,h"]
loaded = {}
all_loaded = threading.Barrier(len(shards))


def load(index):
    fields = shards[index].split(",")
    if len(fields) != 2:
        raise ValueError(f"shard {index} is malformed: {shards[index]!r}")
    loaded[index] = fields
    all_loaded.wait()  # waits for every shard, the broken one included
    print("merged", sorted(loaded))


loaders = [
    threading.Thread(target=load, args=(i,), name=f"shard-{i}", daemon=True)
    for i in range(len(shards))
]
for loader in loaders:
    loader.start()
for loader in loaders:
    loader.join(timeout=3)
print("gave up: the shards never merged")
