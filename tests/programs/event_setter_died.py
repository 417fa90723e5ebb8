"""The thread that should have set an event died.

The loader fails on a missing setting (``KeyError``) before it sets
``config_ready``; the server waits for it for ever.  The program gives
up after 3 s.
"""

import threading

settings = {"host": "db.internal"}
config = {}
config_ready = threading.Event()


def load_config():
    config["host"] = settings["host"]
    config["port"] = int(settings["port"])  # the bug: no default for a missing port
    config_ready.set()


def serve():
    config_ready.wait()
    print("serving on", config["host"], config["port"])


server = threading.Thread(target=serve, name="server", daemon=True)
loader = threading.Thread(target=load_config, name="config-loader")
server.start()
loader.start()
server.join(timeout=3)
print("the server never started")
