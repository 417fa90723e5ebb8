"""Traces every Python process ``threadtrace run`` starts, from the moment it starts.

``threadtrace run`` puts this file's directory first on ``PYTHONPATH``
(``threadtrace/_cli/processes.py``), so ``site`` imports this module at the
start of every Python process that inherits the environment, before the
program's ``__main__``.  It takes its directory off ``sys.path`` (the program
sees the path it would have had), traces the process
(:func:`threadtrace._cli.run.boot`), then imports the ``sitecustomize`` the
program had, if there is one further on the path: only one module of that
name can be imported, so this one hands over to the next.

Nothing here may stop the program: a process that cannot import threadtrace
(another interpreter, another virtual environment) runs untraced, and the
program's own process says so once.
"""

import os
import sys


def _here() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def _off_the_path(here: str) -> None:
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]


def _trace() -> None:
    if not os.environ.get("THREADTRACE_RUN"):
        return  # not started by a run (an environment copied elsewhere): costs nothing
    try:
        from threadtrace._cli.run import boot  # noqa: PLC0415 - in a function: names stay local
    except Exception as error:  # noqa: BLE001 - this interpreter cannot run threadtrace
        if f'"top":{os.getpid()},' in os.environ.get("THREADTRACE_RUN", ""):
            sys.stderr.write(
                f"threadtrace: {sys.executable} cannot import threadtrace ({error}); "
                "the program runs untraced\n"
            )
        return
    boot()


def _hand_over() -> None:
    """Import the next ``sitecustomize`` on the path, the program's own, if any."""
    ours = sys.modules.pop("sitecustomize", None)
    try:
        # The program's own, now that ours is off the path.
        import sitecustomize  # type: ignore[import-not-found,unused-ignore]  # noqa: F401, PLC0415 - see above
    except ImportError as error:
        if error.name != "sitecustomize":
            raise  # the program's sitecustomize failed: site says so, as without threadtrace
    finally:
        # site's importer expects a module under this name once this one has run.
        if "sitecustomize" not in sys.modules and ours is not None:
            sys.modules["sitecustomize"] = ours


_off_the_path(_here())
_trace()
_hand_over()
