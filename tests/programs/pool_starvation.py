"""Pool starvation: a task waits for a sub-task it submitted to its own, full pool.

Each page is rendered on a two-worker pool, and asks the same pool for its
fragment.  Two pages take both workers; their fragments wait in the pool's
queue for a worker that never comes free (a barrier makes sure both pages
run before either asks).  The program gives up after 3 s and cancels what
never ran.
"""

import threading
from concurrent.futures import ThreadPoolExecutor, TimeoutError

pool = ThreadPoolExecutor(max_workers=2)
both_pages_running = threading.Barrier(2)


def fetch_fragment(page):
    return f"<div>{page}</div>"


def render_page(page):
    both_pages_running.wait(timeout=10)
    fragment = pool.submit(fetch_fragment, page)
    return f"<html>{fragment.result()}</html>"  # the bug: no worker is left to run it


pages = [pool.submit(render_page, page) for page in ("home", "about")]
try:
    for page in pages:
        print(page.result(timeout=3))
except TimeoutError:
    print("gave up: the pages never rendered")
pool.shutdown(wait=True, cancel_futures=True)
