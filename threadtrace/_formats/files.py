"""Output files written whole: through symbolic links, atomically, never over what is not a file.

The Perfetto timeline (the ``perfetto`` exporter, ``threadtrace convert``)
is written whole, each time: to a temporary file in the directory of the
file it replaces, which :func:`os.replace` then puts in its place.  Readers
see the old file or the new one, never half of one, and a crash leaves at
most a stray ``*.tmp`` file.

Replacing is right for a regular file only, so the path the user gave is
taken for what it is:

* a symbolic link is followed (through any number of links) and the file it
  leads to is replaced, in that file's directory; the link stays a link.  A
  link to a file that does not exist yet creates that file, as ``open``
  would.
* a directory, a FIFO, a device or a socket is refused with
  :class:`NotRegularFileError`.  Renaming over it would put a regular file in
  its place (as root, ``/dev/full`` itself), and writing into it instead
  would not be atomic, a FIFO would block until someone reads it, and the
  exporter rewrites its file on every flush.
* a regular file keeps its permission bits; a new file gets what the umask
  gives, like any file the program writes.  (Its owner, and other hard links
  to it, are not carried over: the file is a new one.)

The path is looked at before the write, and a path that changes into
something else in between is not noticed.

Thread-safety: every function may be called from any thread; concurrent
writes of one path leave one complete file, the last renamed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import IO, Callable, Optional

__all__ = ["NotRegularFileError", "check_writable", "output_target", "same_file", "write_whole"]


class NotRegularFileError(OSError):
    """The path of an output file is (or leads to) something that is not a regular file.

    Its message says what it is: ``not a regular file (a FIFO)``.
    """


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def output_target(path: str) -> str:
    """The file a write of ``path`` replaces: ``path`` itself, or where its links lead.

    Raises:
        NotRegularFileError: it exists and is not a regular file.
        OSError: it cannot be looked at (a loop of links, a file where a
            directory should be, no permission).
    """
    return _target(path)[0]


def check_writable(path: str) -> None:
    """Make sure :func:`write_whole` can write ``path``: by making its directory and a file in it.

    Missing directories are made.  The file made to try is removed at once.

    Raises:
        OSError: as :func:`write_whole` would (a :class:`NotRegularFileError`
            for a directory, a FIFO, a device).
    """
    target, _ = _target(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    trial = _temporary(target)
    with open(trial, "x", encoding="utf-8"):
        pass
    os.unlink(trial)


def write_whole(path: str, write: Callable[[IO[str]], None]) -> None:
    """Write ``path`` with ``write(file)``, atomically, through links (see the module docstring).

    Missing directories are made.  If ``write`` (or anything else) fails,
    the old file is left as it was and the temporary file is removed.

    Raises:
        NotRegularFileError: ``path`` is or leads to a directory, a FIFO, a
            device or a socket.
        OSError: the file cannot be written.
    """
    target, mode = _target(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temporary = _temporary(target)
    try:
        with open(temporary, "x", encoding="utf-8") as file:
            if mode is not None:
                os.chmod(temporary, mode)
            write(file)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def same_file(first: str, second: str) -> bool:
    """Whether two paths name one file, or would once it is made.

    Through symbolic links, and whatever the spelling (``x``, ``./x``,
    ``d/../x``, an absolute path); two hard links to one file count as the
    same file too.
    """
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (or cannot be looked at): two names
        return False


def _target(path: str) -> tuple[str, Optional[int]]:
    """The file ``path`` leads to, and its permission bits if it is a regular file that exists."""
    # realpath, not readlink: a link may lead to a link, or through a linked directory.
    target = os.path.realpath(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target, None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise NotRegularFileError(f"not a regular file ({kind})")
    return target, stat.S_IMODE(mode)


def _temporary(target: str) -> str:
    # A name of our own rather than tempfile.mkstemp, so that a new file
    # gets the permissions the umask gives, like any file the program writes.
    # os.urandom, what secrets.token_hex reads, without importing secrets:
    # hmac and hashlib come with it, and OpenSSL's libcrypto with them (4 MB).
    return f"{target}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
