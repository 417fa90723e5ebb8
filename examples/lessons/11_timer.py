"""Lesson 11: run something later with ``Timer``, or cancel it.

A ``Timer`` is a thread that waits ``interval`` seconds, then calls its
function, unless ``cancel()`` was called first.

    threadtrace run examples/lessons/11_timer.py

In the trace: ``Thread.run reminder``, whose ``code.function.name`` is the
timer's function (``__main__.ring``) and whose length is the interval plus
the call, and MainThread's ``Thread.join reminder``.  The cancelled
``alarm`` leaves no span: its run was short and quiet (the summary still
counts 2 threads started).
"""

import os
import threading

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


def ring(what):
    print(f"{what}: ring!")


def main():
    reminder = threading.Timer(DELAY, ring, args=("reminder",))
    reminder.name = "reminder"
    alarm = threading.Timer(10 * DELAY, ring, args=("alarm",))
    alarm.name = "alarm"
    print("starting both timers; cancelling the alarm")
    alarm.start()
    reminder.start()
    alarm.cancel()  # before its interval is up: it never rings
    alarm.join()
    reminder.join()
    print("done")


if __name__ == "__main__":
    main()
