"""A small bank whose tellers wait for each other: an example for the contention report.

Tellers post transfers to a shared ledger and hand each one to an exporter
thread through a bounded queue.  Two things make them wait:

* ``Ledger.transfer`` writes its journal entry (a slow write, simulated)
  while still holding the ledger's lock, so the tellers queue up behind
  whoever is writing;
* the export queue holds 4 entries and the exporter is slower than the
  tellers, so ``post`` blocks on a full queue (backpressure).

It imports nothing of threadtrace.  Run it traced, unchanged::

    threadtrace run examples/contention.py
    threadtrace report threadtrace-trace.jsonl

docs/reports.md shows what the report says about it.
"""

from __future__ import annotations

import queue
import threading
import time

TELLERS = 4
TRANSFERS = 25  # per teller
JOURNAL_WRITE = 0.002  # seconds, with the ledger's lock held
EXPORT = 0.003  # seconds per entry in the exporter


class Ledger:
    """Balances, and a journal of every transfer."""

    def __init__(self, accounts: int) -> None:
        self._lock = threading.Lock()
        self.balances = dict.fromkeys(range(accounts), 1_000)
        self.journal: list[tuple[int, int, int]] = []

    def transfer(self, source: int, target: int, amount: int) -> None:
        with self._lock:
            self.balances[source] -= amount
            self.balances[target] += amount
            self.journal.append((source, target, amount))
            time.sleep(JOURNAL_WRITE)  # the journal write: the slow work, lock held

    def total(self) -> int:
        with self._lock:
            return sum(self.balances.values())


ledger = Ledger(accounts=8)
exports: queue.Queue[tuple[int, int, int] | None] = queue.Queue(maxsize=4)
exported: list[tuple[int, int, int]] = []


def post(entry: tuple[int, int, int]) -> None:
    exports.put(entry)  # blocks while the exporter is behind


def teller(number: int) -> None:
    for i in range(TRANSFERS):
        source, target = (number + i) % 8, (number + 3 * i + 1) % 8
        if source == target:
            target = (target + 1) % 8
        ledger.transfer(source, target, 10 + i)
        post((source, target, 10 + i))


def exporter() -> None:
    while True:
        entry = exports.get()
        if entry is None:
            return
        time.sleep(EXPORT)  # the slow sink
        exported.append(entry)


def main() -> None:
    export_thread = threading.Thread(target=exporter, name="exporter")
    export_thread.start()
    tellers = [
        threading.Thread(target=teller, args=(n,), name=f"teller-{n}") for n in range(TELLERS)
    ]
    for thread in tellers:
        thread.start()
    for thread in tellers:
        thread.join()
    exports.put(None)
    export_thread.join()
    assert ledger.total() == 8 * 1_000
    print(f"{len(ledger.journal)} transfers, {len(exported)} exported")


if __name__ == "__main__":
    main()
