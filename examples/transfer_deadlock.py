"""Two transfers in opposite directions deadlock, and threadtrace says who waits for whom.

Each account has its own lock, and ``transfer`` locks the source account,
then the target.  Alice pays Bob while Bob pays Alice: each teller holds
its source account's lock and waits for the other's, forever.  (Here a
``Barrier`` makes the unlucky timing certain.  The fix: take the two locks
in one global order, such as by account number; see
``examples/transfer_lock_order.py``.)

    threadtrace run --deadlock-after 0.5 examples/transfer_deadlock.py

The tellers are daemon threads and the main thread gives up after 1.5 s,
so the program ends by itself.  Before that threadtrace reports ``DEADLOCK:
2 threads wait for each other``: each teller waits for a lock the other
holds, where the holder took it (``with source.lock:``) and where the
waiter waits (``with target.lock:``).  Both locks, made on one line, are
``self.lock (transfer_deadlock.py:33)``, numbered ``#1`` and ``#2`` to tell
them apart.  ``--on-deadlock exit`` ends the process with status 3 instead.
"""

import threading
import time

GIVE_UP = 1.5  # seconds the main thread waits for the tellers

both_hold_one = threading.Barrier(2)


class Account:
    def __init__(self, owner, balance):
        self.owner = owner
        self.balance = balance
        self.lock = threading.Lock()


def transfer(source, target, amount):
    with source.lock:
        both_hold_one.wait(timeout=GIVE_UP)  # both tellers now hold one lock each
        with target.lock:  # the other teller holds it, and waits for ours
            source.balance -= amount
            target.balance += amount


def main():
    alice, bob = Account("alice", 100), Account("bob", 100)
    tellers = [
        threading.Thread(name="teller-1", target=transfer, args=(alice, bob, 10), daemon=True),
        threading.Thread(name="teller-2", target=transfer, args=(bob, alice, 20), daemon=True),
    ]
    for teller in tellers:
        teller.start()
    deadline = time.monotonic() + GIVE_UP
    for teller in tellers:
        teller.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [teller.name for teller in tellers if teller.is_alive()]
    print(f"gave up on {', '.join(stuck)}; balances: alice {alice.balance}, bob {bob.balance}")


if __name__ == "__main__":
    main()
