"""Two threads take two locks in opposite orders and hang; the program gives up after 3 s.

The deadlock is reported once, and not again as stuck threads; the exit
summary counts the waits still blocked at exit.
"""

import threading

accounts_lock = threading.Lock()
ledger_lock = threading.Lock()
both_in = threading.Barrier(2)


def transfer():
    with accounts_lock:
        both_in.wait(timeout=10)
        with ledger_lock:  # audit holds it
            print("transferred")


def audit():
    with ledger_lock:
        both_in.wait(timeout=10)
        with accounts_lock:  # transfer holds it
            print("audited")


threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (transfer, audit)]
for thread in threads:
    thread.start()
threads[0].join(timeout=3)
print("gave up")
