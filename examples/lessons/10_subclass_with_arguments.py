"""Lesson 10: a ``Thread`` subclass with constructor arguments of its own.

A subclass can take the arguments it needs in ``__init__``, as long as it
calls ``super().__init__()`` (with ``name=``, ``daemon=``... as it likes)
before the thread starts.

    threadtrace run examples/lessons/10_subclass_with_arguments.py

In the trace: ``Thread.run downloader`` for each of the three downloaders,
with ``code.function.name = __main__.Downloader.run``.
"""

import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work


class Downloader(threading.Thread):
    """Fetches one (pretend) URL, retrying as often as it is allowed to."""

    def __init__(self, url, *, retries=3, name=None):
        super().__init__(name=name)
        self.url = url
        self.retries = retries
        self.size = None

    def run(self):
        time.sleep(DELAY)  # the download
        self.size = len(self.url) * 100


def main():
    urls = ["https://example.com/", "https://example.org/a", "https://example.net/ab"]
    threads = [
        Downloader(url, retries=number, name=f"downloader-{number}")
        for number, url in enumerate(urls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
        print(f"{thread.name}: {thread.url} (retries={thread.retries}): {thread.size} bytes")


if __name__ == "__main__":
    main()
