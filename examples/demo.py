"""Bank transfers on a thread pool: a plain threaded program to run under threadtrace.

Tellers take transfers from a queue, have each fraud-checked on a
ThreadPoolExecutor, and post it to a ledger behind one lock, which an auditor
also holds while it re-adds every balance.  Nothing here imports threadtrace:

    threadtrace run examples/demo.py

patches threading before this file runs, writes the trace to
threadtrace-trace.jsonl, and prints a summary and the contention report (the
ledger lock, held by the auditor, is the hot one).
"""

import concurrent.futures
import queue
import random
import threading
import time

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
    print(f"{posted} transfers posted by {TELLERS} tellers in {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
