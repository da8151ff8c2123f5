"""`turnwise swe build`: SWE-bench-style tasks from a real package's own test suite.

The SWE-smith recipe, on a pinned sdist from PyPI:

1. unpack the sdist and run its test suite in a sandbox; the tests that pass are the targets;
2. list every AST mutation of the package's functions (`mutate.mutations`), in an order fixed by
   the seed, and try them one by one in the sandbox (restored between tries);
3. keep a mutation when it makes at least one target test fail while the suite still runs (at
   most `max_failing_share` of the targets fail, nothing hangs), one per function;
4. write an instance whose base is the mutated package (`bug_patch`), whose gold `patch` is the
   reverse edit, whose FAIL_TO_PASS are the tests it broke and PASS_TO_PASS the rest, and whose
   problem statement is written from the failing tests' output (or by an LLM, when one is given).

Everything the package's code does, its tests included, runs in the sandbox, never on the host.
The same sdist, seed and options give the same instances, byte for byte.
"""

from __future__ import annotations

import difflib
import hashlib
import random
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .grading import PASSING, parse_pytest_log
from .instances import DEFAULT_TEST_CMD, Instance, commit_base
from .mutate import Mutation, mutations
from .sources import Sdist, resolve

__all__ = ["BuildError", "Candidate", "build", "problem_statement", "source_files", "unified_diff"]

StatementWriter = Callable[[dict[str, Any]], str]

_SKIP_PARTS = {"test", "tests", "testing", "docs", "doc", "examples", "benchmarks", "bench"}
_SKIP_NAMES = {"setup.py", "conftest.py", "versioneer.py", "_version.py", "noxfile.py"}


class BuildError(RuntimeError):
    """The package cannot yield tasks (its tests do not run or pass in the sandbox, ...)."""


@dataclass(frozen=True)
class Candidate:
    path: str
    mutation: Mutation

    @property
    def key(self) -> str:
        raw = f"{self.path}:{self.mutation.start}:{self.mutation.end}:{self.mutation.new}"
        return hashlib.sha256(raw.encode()).hexdigest()[:8]


def source_files(root: Path) -> list[str]:
    """The package's Python modules (relative POSIX paths), tests and tooling left out."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = PurePosixPath(path.relative_to(root).as_posix())
        if rel.name in _SKIP_NAMES or rel.name.startswith("test_") or rel.stem.endswith("_test"):
            continue
        if any(part.lower() in _SKIP_PARTS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        found.append(str(rel))
    return found


def unified_diff(path: str, before: str, after: str) -> str:
    """A git-style unified diff of one file (what `git apply` takes).

    Example:
        >>> print(unified_diff("a.py", "x = 1\\n", "x = 2\\n"), end="")
        diff --git a/a.py b/a.py
        --- a/a.py
        +++ b/a.py
        @@ -1 +1 @@
        -x = 1
        +x = 2
    """
    lines = []
    for line in difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"a/{path}",
        f"b/{path}",
        n=3,
    ):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        lines.append(line)
    if not lines:
        return ""
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


_SECTION = re.compile(r"^_{3,} (.+?) _{3,}$")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def failure_excerpt(log: str, test_id: str, limit: int = 20) -> str:
    """The `E   ...` lines pytest printed for one failing test (its assertion, its error)."""
    name = test_id.split("::")[-1]
    lines: list[str] = []
    inside = False
    for line in log.splitlines():
        header = _SECTION.match(line)
        if header:
            inside = header.group(1).split(".")[-1] == name or header.group(1).endswith(name)
            continue
        if line.startswith("=") and inside:
            break
        if inside and line.startswith("E "):
            lines.append(line[1:].strip())
    if not lines:
        return ""
    # Memory addresses differ between machines: the statement must be the same everywhere.
    lines = [_ADDRESS.sub("0x...", line) for line in lines]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
    return "\n".join(lines)


def problem_statement(context: dict[str, Any]) -> str:
    """An issue-style statement from the failing tests (no hint of where the bug is).

    Example:
        >>> print(problem_statement({"package": "demo", "version": "1.0",
        ...     "failing": ["t.py::test_a"], "excerpt": "assert 1 == 2"}))
        demo 1.0: 1 test of the package's own test suite fails.
        <BLANKLINE>
        Running the test suite (`python -m pytest`), this test fails:
        - t.py::test_a
        <BLANKLINE>
        Its failure:
        ```
        assert 1 == 2
        ```
        <BLANKLINE>
        The tests are right and the library code is wrong. Fix the library so that the failing tests pass and every other test still passes.
    """
    failing = list(context["failing"])
    n = len(failing)
    shown = failing[:5]
    listing = "\n".join(f"- {t}" for t in shown)
    if n > len(shown):
        listing += f"\n- and {n - len(shown)} more"
    these = "this test fails" if n == 1 else "these tests fail"
    text = (
        f"{context['package']} {context['version']}: {n} test{'s' if n != 1 else ''} of the "
        f"package's own test suite fail{'s' if n == 1 else ''}.\n\n"
        f"Running the test suite (`python -m pytest`), {these}:\n{listing}\n"
    )
    if context.get("excerpt"):
        label = "Its failure" if n == 1 else "The first failure"
        text += f"\n{label}:\n```\n{context['excerpt']}\n```\n"
    return text + (
        "\nThe tests are right and the library code is wrong. Fix the library so that the failing "
        "tests pass and every other test still passes."
    )


def build(
    package: str | Sdist,
    *,
    count: int = 10,
    seed: int = 0,
    max_attempts: int = 200,
    max_failing_share: float = 0.5,
    test_share: float = 0.25,
    writer: StatementWriter | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Instance]:
    """Build up to `count` instances from `package` (`name==version`, or a pinned `Sdist`).

    Args:
        count: instances wanted; fewer come back when the candidates run out.
        seed: orders the candidate mutations (the same seed gives the same instances).
        max_attempts: candidates tried at most (each costs one run of the test suite).
        max_failing_share: a mutation failing more of the target tests than this is dropped
            (it breaks the package wholesale, e.g. at import, which makes a poor task).
        test_share: the share of instances put in the `test` split (chosen by id hash).
        writer: writes the problem statement from a context dict (`package`, `version`,
            `failing`, `excerpt`, `log`); the default is `problem_statement`.
        progress: called with one line per candidate tried.

    Raises:
        BuildError: the package's tests do not run or none passes in the sandbox.
        turnwise.sandboxes.base.SandboxUnavailable: bubblewrap is missing.
    """
    from turnwise.sandboxes.base import Limits
    from turnwise.sandboxes.bwrap import BwrapSandbox

    sdist = resolve(package) if isinstance(package, str) else package
    say = progress or (lambda line: None)
    write = writer or problem_statement
    scratch = Path(tempfile.mkdtemp(prefix="turnwise-swe-build-"))
    try:
        pristine = sdist.unpack(scratch / "pristine")
        files = {p: (pristine / p).read_text(encoding="utf-8") for p in source_files(pristine)}
        candidates = [Candidate(p, m) for p, text in files.items() for m in mutations(text)]
        random.Random(seed).shuffle(candidates)
        limits = Limits(timeout=300)
        with BwrapSandbox(pristine, python=True, limits=limits, deterministic=True) as sandbox:
            base = sandbox.run(DEFAULT_TEST_CMD)
            statuses = parse_pytest_log(base.stdout)
            targets = sorted(t for t, s in statuses.items() if s in PASSING)
            if not targets:
                raise BuildError(
                    f"{sdist.spec}: no test passes in the sandbox (exit {base.exit_code}):\n"
                    f"{base.output[-2000:]}"
                )
            say(f"{sdist.spec}: {len(targets)} tests pass; {len(candidates)} candidate mutations")
            timeout = max(20.0, 5 * base.duration)
            sandbox.snapshot()
            kept: list[Instance] = []
            used_functions: set[tuple[str, str]] = set()
            for attempt, cand in enumerate(candidates[:max_attempts], 1):
                if len(kept) >= count:
                    break
                where = (cand.path, cand.mutation.function)
                if where in used_functions:
                    continue
                mutated = cand.mutation.apply(files[cand.path])
                sandbox.write(cand.path, mutated)
                result = sandbox.run(DEFAULT_TEST_CMD, timeout=timeout)
                sandbox.restore()
                after = parse_pytest_log(result.stdout)
                failing = [t for t in targets if after.get(t) not in PASSING]
                verdict = "kept"
                if result.timed_out:
                    verdict = "dropped (the tests hang)"
                elif not failing:
                    verdict = "dropped (no test notices)"
                elif len(failing) > max_failing_share * len(targets):
                    verdict = f"dropped ({len(failing)} of {len(targets)} tests fail)"
                say(f"[{attempt}] {cand.path}: {cand.mutation.describe()}: {verdict}")
                if verdict != "kept":
                    continue
                used_functions.add(where)
                instance = _instance(
                    sdist, cand, files[cand.path], mutated, failing, targets, result.stdout, write
                )
                instance.split = "test" if int(cand.key, 16) % 1000 < test_share * 1000 else "train"
                instance.base_commit = _base_commit(pristine, scratch, instance)
                kept.append(instance)
        return kept
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _instance(
    sdist: Sdist,
    cand: Candidate,
    original: str,
    mutated: str,
    failing: list[str],
    targets: list[str],
    log: str,
    write: StatementWriter,
) -> Instance:
    context = {
        "package": sdist.name,
        "version": sdist.version,
        "failing": failing,
        "excerpt": failure_excerpt(log, failing[0]),
        "log": log,
    }
    failing_set = set(failing)
    return Instance(
        instance_id=f"{sdist.name}-{sdist.version}-{cand.key}",
        repo=f"pypi/{sdist.name}",
        base_commit="",
        problem_statement=write(context).strip(),
        FAIL_TO_PASS=failing,
        PASS_TO_PASS=[t for t in targets if t not in failing_set],
        patch=unified_diff(cand.path, mutated, original),
        version=sdist.version,
        source=sdist.to_dict(),
        bug_patch=unified_diff(cand.path, original, mutated),
        mutation=f"{cand.path}: {cand.mutation.describe()}",
    )


def _base_commit(pristine: Path, scratch: Path, instance: Instance) -> str:
    """Apply the bug patch to a copy of the sdist and commit it: the instance's base commit."""
    repo = scratch / f"repo-{instance.instance_id}"
    shutil.copytree(pristine, repo, symlinks=True)
    try:
        return commit_base(repo, instance)
    finally:
        shutil.rmtree(repo, ignore_errors=True)
