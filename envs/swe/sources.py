"""Pinned source distributions from PyPI: what SWE tasks are built from.

A `Sdist` names one file on PyPI by name, version, URL and sha256. `fetch()` downloads it once
into turnwise's cache (`~/.cache/turnwise/swe/sdists`) and refuses a file whose hash differs, so a
task set built from pins is rebuilt from exactly the same code everywhere. `resolve()` finds the
sdist of `name==version` through PyPI's JSON simple API (the index pip uses).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from turnwise.paths import cache_dir

__all__ = ["INDEX_URL", "Sdist", "SourceError", "resolve"]

#: The package index's simple API (PEP 691 JSON); `TURNWISE_PYPI_URL` overrides it.
INDEX_URL = "https://pypi.org/simple"
_TIMEOUT = 60


class SourceError(RuntimeError):
    """An sdist could not be found, downloaded, verified or unpacked."""


@dataclass(frozen=True)
class Sdist:
    """One source distribution on PyPI, pinned by its sha256.

    Example:
        >>> s = Sdist("inflection", "0.5.1", "inflection-0.5.1.tar.gz", "https://x/i.tar.gz", "ab" * 32)
        >>> Sdist.from_dict(s.to_dict()) == s
        True
    """

    name: str
    version: str
    filename: str
    url: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sdist:
        try:
            return cls(
                **{k: str(data[k]) for k in ("name", "version", "filename", "url", "sha256")}
            )
        except KeyError as exc:
            raise SourceError(f"an sdist pin needs {exc.args[0]!r}: {data!r:.200}") from None

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    def fetch(self) -> Path:
        """The verified archive in the cache (downloaded on first use)."""
        folder = cache_dir("swe", "sdists")
        path = folder / self.filename
        if path.exists() and _sha256(path) == self.sha256:
            return path
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, _open(self.url) as response:
                shutil.copyfileobj(response, out)
            digest = _sha256(Path(tmp))
            if digest != self.sha256:
                raise SourceError(
                    f"{self.filename} from {self.url} has sha256 {digest}, but the pin says "
                    f"{self.sha256}: the file changed or the download was corrupted"
                )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def unpack(self, dest: str | os.PathLike[str]) -> Path:
        """Extract the archive's single top folder's contents into `dest` (created); returns it.

        Members that would land outside `dest` (absolute paths, `..`, links out) are refused.
        """
        archive = self.fetch()
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise SourceError(f"cannot unpack {archive}: {exc}") from exc
            tops = os.listdir(tmp)
            if len(tops) != 1 or not os.path.isdir(os.path.join(tmp, tops[0])):
                raise SourceError(f"{self.filename} does not hold exactly one top folder")
            top = Path(tmp, tops[0])
            for entry in top.iterdir():
                shutil.move(str(entry), dest / entry.name)
        return dest


def resolve(spec: str) -> Sdist:
    """The pin of `name==version`'s sdist on the index (network).

    Raises:
        SourceError: the spec is not `name==version`, or the index has no sdist for it.
    """
    name, sep, version = spec.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise SourceError(f"a package is given as NAME==VERSION, got {spec!r}")
    name, version = name.strip(), version.strip()
    normal = name.lower().replace("_", "-").replace(".", "-")
    base = os.environ.get("TURNWISE_PYPI_URL", INDEX_URL).rstrip("/")
    request = urllib.request.Request(
        f"{base}/{normal}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            files = json.load(response).get("files", [])
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot list {name} on {base}: {exc}") from exc
    stems = {f"{n}-{version}".lower() for n in (name, normal, normal.replace("-", "_"))}
    for entry in files:
        filename = str(entry.get("filename", ""))
        stem = filename.removesuffix(".tar.gz")
        if filename.endswith(".tar.gz") and stem.lower() in stems:
            sha = entry.get("hashes", {}).get("sha256")
            if not sha:
                raise SourceError(f"{base} gives no sha256 for {filename}")
            url = str(entry["url"])
            if not url.startswith(("https://", "http://")):
                url = f"{base}/{normal}/{url}"
            return Sdist(name, version, filename, url, str(sha))
    raise SourceError(f"{base} has no .tar.gz sdist of {name} {version}")


def _open(url: str) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=_TIMEOUT)
    except OSError as exc:
        raise SourceError(f"cannot download {url}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
