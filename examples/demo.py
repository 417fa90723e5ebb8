"""Bank transfers on a thread pool, traced by threadtrace.

Tellers take transfers from a queue, have each fraud-checked on a
ThreadPoolExecutor, and post it to a ledger behind one lock, which an auditor
also holds while it re-adds every balance.  At the end it prints what the
busiest primitives saw.  Usage: demo.py [--quiet] (--quiet: no JSON on stderr).
"""

import argparse
import concurrent.futures
import queue
import random
import threading
import time

import threadtrace

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quiet", action="store_true", help="export nothing, print only the summary")
QUIET = parser.parse_args().quiet
# Patch first: primitives made before this stay plain threading ones.  Measure
# the hold time of one uncontended acquisition in 10 (default 100).  With
# exporters=() nothing is exported, but statistics() still counts everything.
threadtrace.patch(sample_every=10, exporters=() if QUIET else ("console",))

TELLERS, TRANSFERS, ACCOUNTS = 4, 80, 10

balances = dict.fromkeys(range(ACCOUNTS), 1_000)
ledger_lock = threading.Lock()  # the hot lock: every posting and every audit
settled = threading.Condition()  # main waits here until every transfer is posted
posted = 0
start_line = threading.Barrier(TELLERS + 1)  # tellers and main start together
closing = threading.Event()  # shutdown signal for tellers and the auditor
transfers = queue.Queue(maxsize=8)
fraud_checks = concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix="fraud")


def fraud_check(transfer):
    time.sleep(random.uniform(0.005, 0.02))  # a call to a scoring service
    return transfer[2] < 500


def teller():
    global posted
    start_line.wait(timeout=5)
    while not closing.is_set():
        try:
            transfer = transfers.get(timeout=0.1)
        except queue.Empty:
            continue
        approved = fraud_checks.submit(fraud_check, transfer).result(timeout=5)
        source, target, amount = transfer
        with ledger_lock:
            if approved and balances[source] >= amount:
                balances[source] -= amount
                time.sleep(0.002)  # write the journal entry while still holding the lock
                balances[target] += amount
        transfers.task_done()
        with settled:
            posted += 1
            if posted == TRANSFERS:
                settled.notify_all()


def auditor():
    while not closing.wait(timeout=0.15):
        with ledger_lock:
            time.sleep(0.03)  # re-add every balance: slow, and everyone waits
            assert sum(balances.values()) == 1_000 * ACCOUNTS


def main():
    started = time.monotonic()
    workers = [threading.Thread(target=teller, name=f"teller-{i}") for i in range(TELLERS)]
    workers.append(threading.Thread(target=auditor, name="auditor"))
    for worker in workers:
        worker.start()
    start_line.wait(timeout=5)
    rng = random.Random(7)
    for _ in range(TRANSFERS):
        source, target = rng.sample(range(ACCOUNTS), 2)
        transfers.put((source, target, rng.randrange(1, 600)))
    with settled:
        settled.wait_for(lambda: posted == TRANSFERS, timeout=10)
    closing.set()
    for worker in workers:
        worker.join(timeout=5)
    fraud_checks.shutdown(wait=True)
    elapsed = time.monotonic() - started

    print(f"{posted} transfers posted by {TELLERS} tellers in {elapsed:.2f} s")
    print(f"{'primitive':<28} {'name':<28} {'ops':>4} {'blocked':>7} {'waited':>8} {'longest':>8}")
    for label, primitive in (
        ("ledger lock", ledger_lock),
        ("queue: wait for a transfer", transfers.not_empty),
        ("queue: wait for room", transfers.not_full),
        ("settled condition", settled),
        ("start line barrier", start_line),
        ("closing event", closing),
    ):
        print(f"{label:<28} {summary(primitive.statistics())}")
    lock = ledger_lock.statistics()
    print(
        f"ledger lock: {lock.holds_measured} of {lock.acquisitions} holds measured "
        f"(contended ones, the 16 after each contention, 1 in 10 of the rest), "
        f"longest {lock.max_hold * 1e3:.1f} ms"
    )
    if not QUIET:
        print("spans and metrics are written to stderr as JSON (the rest at exit)")


def summary(stats):
    """One row: the primitive's name, operations, how many blocked, and for how long."""
    if isinstance(stats, threadtrace.LockStatistics):
        ops, blocked = stats.acquisitions, stats.contended
    else:
        ops, blocked = stats.waits, stats.blocked
    waited, longest = stats.total_wait * 1e3, stats.max_wait * 1e3
    return f"{stats.name:<28} {ops:>4} {blocked:>7} {waited:>6.1f}ms {longest:>6.1f}ms"


if __name__ == "__main__":
    main()
