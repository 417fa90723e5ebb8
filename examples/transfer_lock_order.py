"""Transfers take account locks in conflicting orders: a possible deadlock, caught without one.

``transfer`` locks the source account, then the target.  This run makes
the transfers one after another, so it never hangs; but Alice paying Bob
while Bob pays Alice would deadlock (``examples/transfer_deadlock.py``).
threadtrace records the order in which locks are taken and reports the
first conflict.  The accounts' locks are all made on one line, and still
told apart: the report is per lock, numbered ``#1``, ``#2`` where they
share a name.  ``safe_transfer`` shows the fix: lock
the two accounts in one global order (by account number), whichever pays.

    threadtrace run --lock-order true examples/transfer_lock_order.py

(``--lock-order true`` is the default with the C lock core, not with the
pure-Python one.)  What to look at: ``POSSIBLE DEADLOCK: locks were taken
in conflicting orders``, the cycle, each thread's two acquisitions with
their lines, and the "possible unsafe scenario".  The two
``safe_transfer`` calls add no report.
"""

import threading


class Account:
    def __init__(self, number, balance):
        self.number = number
        self.balance = balance
        self.lock = threading.Lock()


def transfer(source, target, amount):
    with source.lock, target.lock:  # source first: the order depends on who pays
        source.balance -= amount
        target.balance += amount


def safe_transfer(source, target, amount):
    first, second = sorted((source, target), key=lambda account: account.number)
    with first.lock, second.lock:  # always the lower account number first
        source.balance -= amount
        target.balance += amount


def run(name, function, *args):
    thread = threading.Thread(name=name, target=function, args=args)
    thread.start()
    thread.join()  # one at a time: no hang this run


def main():
    alice, bob, carol = Account(1, 100), Account(2, 100), Account(3, 100)
    run("alice-pays-bob", transfer, alice, bob, 10)
    run("bob-pays-alice", transfer, bob, alice, 20)
    run("carol-pays-bob", safe_transfer, carol, bob, 5)
    run("bob-pays-carol", safe_transfer, bob, carol, 5)
    print(f"balances: alice {alice.balance}, bob {bob.balance}, carol {carol.balance}")


if __name__ == "__main__":
    main()
