"""Writing files so that a reader never sees half of one, with the permissions the user's umask gives.

Every file rnnkit writes for a user (checkpoints, results, plots, token caches) goes through
``atomic_write``: the data goes to a temporary file in the same directory, is flushed to disk, and
is renamed over the target (``os.replace`` is atomic on one file system). A failure or a kill at
any moment leaves the target as it was and no temporary file behind (a killed process may leave a
``.tmp-*`` file, which the next checkpoint write removes).
"""

from __future__ import annotations

import codecs
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def umask() -> int:
    """The process's file-mode creation mask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open()`` under the user's umask (0644 with umask 022)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode a new directory gets from ``mkdir`` under the user's umask (0755 with umask 022)."""
    return 0o777 & ~umask()


@contextmanager
def atomic_write(path: os.PathLike, *, binary: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path`` atomically.

    Inputs:
        path: the file to (re)place; its directory must exist.
        binary: a binary handle (else text, UTF-8).
    Outputs:
        the handle to write to. When the ``with`` block ends normally the data is flushed to disk,
        the file gets the umask's mode (``file_mode()``, not ``mkstemp``'s 0600) and is renamed
        over ``path``, and the directory entry is flushed. On any error the temporary file is
        removed and ``path`` is left as it was.

    Example::

        with atomic_write("result.json") as handle:
            json.dump(result, handle)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through ``atomic_write``."""
    with atomic_write(path) as handle:
        handle.write(text)


def fsync_dir(path: os.PathLike) -> None:
    """Flush a directory's entries (renames) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python has a codec of that name, else ValueError saying what to give.

    Example: ``check_encoding("latin-1")`` returns ``"latin-1"``; ``check_encoding("bogus")`` raises.
    """
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"unknown text encoding {encoding!r}: give one Python knows, such as utf-8, "
                         f"latin-1 or cp1252") from None
    return encoding
