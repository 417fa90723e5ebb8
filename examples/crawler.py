"""A crawler: a thread pool fetches pages, sharing a robots.txt cache behind a lock.

Four workers of a ``ThreadPoolExecutor`` crawl twelve pages on three hosts.
Before a page, a worker needs its host's robots.txt, from a cache that all
workers share.  The cache fetches each file once however many workers ask
at the same moment: the first to ask fetches it, outside the lock, and the
others wait on an ``Event`` for that fetch, not on the lock.  Nothing goes
to the network: fetches are short sleeps, and pages are made up.

    threadtrace run examples/crawler.py
    threadtrace report threadtrace-trace.jsonl

What to look at: ``Event.wait fetched`` spans, workers waiting for another
worker's fetch of the same robots.txt (``threadtrace.waker.thread.name`` is
the worker that fetched it); ``Thread.run crawler`` for each worker of the
pool (named after ``thread_name_prefix``).  The cache's lock is held only
for dictionary lookups, so it is rarely, if ever, contended.
"""

import concurrent.futures
import os
import threading
import time

DELAY = float(os.environ.get("LESSON_DELAY", "0.1"))  # seconds of pretend work

HOSTS = ["example.com", "example.org", "example.net"]
PAGES = [f"https://{host}/{path}" for host in HOSTS for path in ("", "about", "private/a", "blog")]


def download(url):
    """The network, simulated: a pause, then the text at ``url``."""
    time.sleep(DELAY if url.endswith("/robots.txt") else DELAY / 5)
    if url.endswith("/robots.txt"):
        return "Disallow: /private/"
    return f"<html>{url}</html>"


class RobotsCache:
    """robots.txt of each host, fetched once, shared by every worker (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()  # guards the two dicts, never held while fetching
        self._rules = {}  # host -> robots.txt text
        self._fetching = {}  # host -> Event set when its fetch has finished
        self.fetches = 0

    def rules(self, host):
        with self._lock:
            if host in self._rules:
                return self._rules[host]
            fetched = self._fetching.get(host)
            first = fetched is None
            if first:  # nobody is fetching it: this thread will
                fetched = self._fetching[host] = threading.Event()
                self.fetches += 1
        if not first:
            fetched.wait()  # another worker is fetching it right now
            with self._lock:
                return self._rules[host]
        text = download(f"https://{host}/robots.txt")  # slow: the lock is not held
        with self._lock:
            self._rules[host] = text
            del self._fetching[host]
        fetched.set()
        return text


def crawl(url, robots):
    """Fetch ``url`` if its host's robots.txt allows it; its size, or None if not allowed."""
    host, _, path = url.removeprefix("https://").partition("/")
    disallowed = robots.rules(host).removeprefix("Disallow: ")
    if ("/" + path).startswith(disallowed):
        return None
    return len(download(url))


def main():
    robots = RobotsCache()
    with concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="crawler") as pool:
        sizes = list(pool.map(crawl, PAGES, [robots] * len(PAGES)))
    crawled = [size for size in sizes if size is not None]
    print(f"crawled {len(crawled)} of {len(PAGES)} pages ({sum(crawled)} bytes)")
    print(f"skipped {len(PAGES) - len(crawled)} disallowed by robots.txt")
    print(f"fetched robots.txt {robots.fetches} times for {len(HOSTS)} hosts")


if __name__ == "__main__":
    main()
