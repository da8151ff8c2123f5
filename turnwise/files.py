"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "build_folder_once"]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Create `path` by calling `write(tmp)` on a temporary sibling, then renaming it.

    The rename is atomic, so `path` is either its old self or complete; on any failure the
    temporary file is removed and `path` is untouched. The file gets the usual permissions
    (0o666 less the umask), not the owner-only ones of `tempfile.mkstemp`.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.txt", lambda tmp: tmp.write_text("hello")).read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """`atomic_write` of UTF-8 text, flushed to disk before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def build_folder_once(final: Path, build: Callable[[Path], object], *, done: str) -> Path:
    """The folder `final`, built by `build(tmp)` in a temporary sibling renamed into place.

    `final / done` marks a finished folder: when it exists nothing is built. Concurrent first
    uses are safe: whoever renames first wins and the others keep that folder. A cache (the
    tiny model, an SFT checkpoint) never exposes a half-built folder.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> def build(tmp):
        ...     (tmp / "done").write_text("ok")
        >>> build_folder_once(root / "cache", build, done="done") == root / "cache"
        True
    """
    if (final / done).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(scratch)
        try:
            os.rename(scratch, final)
        except OSError:
            # Someone else finished first (the folder exists and is not empty): use theirs.
            if not (final / done).exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final
