"""Writing output files without harm: the one module every command writes its outputs through.

Rules (ARCHITECTURE.md, "one safety layer each"):

* A regular file, or a path that does not exist yet, is written atomically: a temporary file in the
  same folder, flushed and ``fsync``-ed, then ``os.replace``; a reader never sees half a file, and an
  existing file keeps its permission bits.
* A character or block device (``/dev/null``, ``/dev/full``, a tape), a FIFO or ``-`` (standard
  output) is written to directly. It is never renamed over, so a device node or a pipe survives.
* A socket, a folder where a file is wanted, a path inside ``/proc`` or ``/sys``, a read-only mount or
  a folder without write permission is refused by :func:`check_target` *before* any work starts
  (the check really creates and removes a temporary file there).
* Any failure removes the temporary file. A full disk (``ENOSPC``, ``EDQUOT``, ``EFBIG``) becomes an
  :class:`OutputError` whose message is one line (commands print it and exit 1).
* ``private=True`` makes new files mode 0600 (session stores, uploads, reports: investigations are
  private); otherwise new files get the usual ``0666 & ~umask``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from geolocate.tools.errors import GeolocateError

FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
"""errno values that mean "no room left" (disk full, quota exceeded, file too large)."""


class OutputError(GeolocateError, OSError):
    """An output cannot be written; the message is one line naming the path and the reason
    (the CLI prints it and exits 1)."""


class OutputTargetError(OutputError, ValueError):
    """:func:`check_target` found before any work that the target cannot be written (a bad argument:
    the CLI exits 2)."""


def describe_os_error(e: OSError, path: str | Path | None = None) -> str:
    """One line for an ``OSError``: ``PATH: no space left on the device`` and the like.

    >>> describe_os_error(OSError(28, "No space left on device"), "out.json")
    'out.json: no space left on the device (disk full)'
    """
    where = str(path if path is not None else (e.filename or "output"))
    if e.errno in FULL_DISK:
        return f"{where}: no space left on the device (disk full)"
    reason = (e.strerror or str(e) or type(e).__name__).rstrip(".")
    return f"{where}: {reason[:1].lower() + reason[1:]}"


def _special(st: os.stat_result) -> bool:
    """A character or block device or a FIFO: written in place, never replaced."""
    return stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP):
            raise OutputError(describe_os_error(e, path)) from None
        raise OutputError(describe_os_error(e, path)) from None


def _probe_folder(folder: Path, shown: str | Path) -> None:
    """Create and remove a temporary file in ``folder``: the one check that catches ``/proc``,
    ``/sys``, read-only mounts, missing permission and a full disk before any work is done."""
    if not folder.exists():
        raise OutputTargetError(f"{shown}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputTargetError(f"{shown}: {folder} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".geolocate-probe-")
    except OSError as e:
        why = describe_os_error(e, folder).split(": ", 1)[-1]
        raise OutputTargetError(f"{shown}: cannot write in {folder} ({why})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def check_target(target: str | Path, folder: bool = False) -> None:
    """Check before any work that ``target`` can be written (``folder``: a folder of outputs,
    created if missing). ``-`` (standard output) always can.

    Raises:
        OutputError: why it cannot (one line).
    """
    if str(target) == "-":
        if folder:
            raise OutputTargetError("-: standard output cannot hold several files; give a folder")
        return
    p = Path(target)
    try:
        st = _stat(p)
    except OutputError as e:
        raise OutputTargetError(str(e)) from None
    if folder:
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise OutputTargetError(f"{p}: OUT must be a folder (several outputs go there); this is a file")
        if st is None:
            parent = p.parent if str(p.parent) else Path(".")
            if not parent.exists():
                raise OutputTargetError(f"{p}: the folder {parent} does not exist")
            try:
                p.mkdir()
            except OSError as e:
                raise OutputTargetError(describe_os_error(e, p)) from None
        _probe_folder(p, p)
        return
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputTargetError(f"{p}: is a folder; give a file name")
        if stat.S_ISSOCK(st.st_mode):
            raise OutputTargetError(f"{p}: is a socket; give a file name")
        if _special(st):
            if not os.access(p, os.W_OK):
                raise OutputTargetError(f"{p}: no permission to write")
            return
    real = Path(os.path.realpath(p))
    _probe_folder(real.parent if str(real.parent) else Path("."), p)


@contextlib.contextmanager
def _stdout(binary: bool) -> Iterator[IO]:
    stream = sys.stdout.buffer if binary else sys.stdout
    yield stream
    stream.flush()


@contextlib.contextmanager
def open_output(target: str | Path, binary: bool = False, private: bool = False) -> Iterator[IO]:
    """A file object to write ``target`` through, by the module's rules: atomic for regular files
    and new paths, direct for devices, FIFOs and ``-``. The content is in place when the ``with``
    block ends without an exception; on any exception the temporary file is removed and the
    target is left as it was.

    Raises:
        OutputError: the target cannot be written (one line; a full disk says so).
    """
    if str(target) == "-":
        try:
            with _stdout(binary) as f:
                yield f
        except BrokenPipeError:  # `| head`: the reader went away; nothing to clean up
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        except OSError as e:
            raise OutputError(describe_os_error(e, "standard output")) from None
        return
    p = Path(target)
    st = _stat(p)
    if st is not None and stat.S_ISSOCK(st.st_mode):
        raise OutputError(f"{p}: is a socket; give a file name")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{p}: is a folder; give a file name")
    if st is not None and _special(st):
        try:
            # O_WRONLY without O_CREAT or O_TRUNC: a device or FIFO is used as it is.
            fd = os.open(p, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
                yield f
        except OSError as e:
            raise OutputError(describe_os_error(e, p)) from None
        return
    real = Path(os.path.realpath(p))  # a symbolic link keeps pointing at the file it names
    folder = real.parent if str(real.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(describe_os_error(e, p)) from None
    try:
        mode = stat.S_IMODE(st.st_mode) if st is not None else (0o600 if private else 0o666 & ~_umask())
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(describe_os_error(e, p)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_output(target: str | Path, data: str | bytes, private: bool = False) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``target`` by the module's rules.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_output(d / "a.json", "{}")
    >>> (d / "a.json").read_text()
    '{}'

    Raises:
        OutputError: it cannot be written (one line; a full disk says so).
    """
    with open_output(target, binary=isinstance(data, bytes), private=private) as f:
        f.write(data)


@contextlib.contextmanager
def output_path(target: str | Path, suffix: str = "", private: bool = False) -> Iterator[Path]:
    """A temporary path for a writer that needs a file name (matplotlib, SQLite): it becomes
    ``target`` when the ``with`` block ends without an exception (renamed over a regular file or a
    new path; copied into a device or FIFO) and is removed on any failure.

    Raises:
        OutputError: the target cannot be written (one line; a full disk says so).
    """
    p = Path(target)
    st = _stat(p)
    direct = st is not None and _special(st)
    real = Path(os.path.realpath(p))
    folder = Path(tempfile.gettempdir()) if direct else (real.parent if str(real.parent) else Path("."))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{real.name}.", suffix=suffix or ".tmp")
        os.close(fd)
    except OSError as e:
        raise OutputError(describe_os_error(e, p)) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if direct:
            with open_output(p, binary=True) as f, open(tmp_path, "rb") as src:
                while chunk := src.read(1 << 20):
                    f.write(chunk)
            tmp_path.unlink()
        else:
            mode = stat.S_IMODE(st.st_mode) if st is not None else (0o600 if private else 0o666 & ~_umask())
            os.chmod(tmp_path, mode)
            os.replace(tmp_path, real)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(e, OutputError):
            raise
        raise OutputError(describe_os_error(e, p)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def open_append(target: str | Path, private: bool = False) -> Iterator[IO]:
    """A text file opened for appending lines (a resumable results file). Each line written should be
    complete; a full disk mid-line leaves a half line that readers skip (see
    :func:`geolocate.evals.runner.read_jsonl`).

    Raises:
        OutputError: it cannot be opened or written (one line; a full disk says so).
    """
    p = Path(target)
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(p, flags, 0o600 if private else 0o666)
        f = os.fdopen(fd, "a", encoding="utf-8")
    except OSError as e:
        raise OutputError(describe_os_error(e, p)) from None
    try:
        yield f
        f.flush()
    except OSError as e:
        raise OutputError(describe_os_error(e, p)) from None
    finally:
        with contextlib.suppress(OSError):
            f.close()


def save_figure(fig, target: str | Path, **savefig_kwargs) -> None:
    """``fig.savefig`` through :func:`output_path` (format from the file's suffix, PNG by default),
    then close the figure (matplotlib keeps figures alive until closed).

    Raises:
        OutputError: it cannot be written (one line; a full disk says so).
    """
    import matplotlib.pyplot as plt

    try:
        suffix = Path(target).suffix or ".png"
        with output_path(target, suffix=suffix) as tmp:
            fig.savefig(tmp, format=suffix.lstrip(".") or "png", **savefig_kwargs)
    finally:
        plt.close(fig)


def make_private(path: str | Path) -> None:
    """Mode 0600 for a file of an investigation that already exists (a session store and its
    ``-wal``/``-shm`` companions); missing files are ignored."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        os.chmod(path, 0o600)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
