"""Two threads take two locks in opposite orders, and hang: a real deadlock.

    threadtrace run --on-deadlock exit examples/deadlock.py

reports the cycle about a second after it forms, with both stacks, then ends
the process with status 3 (without --on-deadlock exit the report is logged,
and the main thread gives up on its two daemon threads after 5 s).
"""

import threading

accounts_lock = threading.Lock()
ledger_lock = threading.Lock()
both_in = threading.Barrier(2)


def transfer():
    with accounts_lock:
        both_in.wait()
        with ledger_lock:  # audit holds it, and waits for accounts_lock
            print("transferred")


def audit():
    with ledger_lock:
        both_in.wait()
        with accounts_lock:  # transfer holds it, and waits for ledger_lock
            print("audited")


threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (transfer, audit)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=2.5)  # daemon threads and timeouts: the program ends, even deadlocked
print("gave up waiting for", ", ".join(t.name for t in threads if t.is_alive()))
