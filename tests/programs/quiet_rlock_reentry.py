"""Quiet: a registry whose methods call each other under one RLock, for 2 s."""

import threading
import time

registry_lock = threading.RLock()
registry = {}


def register(name):
    with registry_lock:
        if not lookup(name):  # re-enters registry_lock
            registry[name] = len(registry)


def lookup(name):
    with registry_lock:
        return registry.get(name)


def churn(prefix):
    deadline = time.monotonic() + 2
    n = 0
    while time.monotonic() < deadline:
        register(f"{prefix}-{n % 50}")
        n += 1


threads = [threading.Thread(target=churn, args=(f"t{i}",), name=f"t{i}") for i in range(3)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=10)
print("registered", len(registry))
