"""`collect`: play many episodes in env worker processes and write them as a rollout dataset.

The plan is deterministic: the first `tasks` task ids of the split, each played by a group of
`group_size` members that share the env seed and a `group_id` but sample with their own seed,
derived from (run seed, task, member). Every episode has a fixed trajectory id, so an interrupted
run resumed with `resume=True` ends with exactly the trajectories of an uninterrupted one (for
deterministic policies: `expert`, `random`, greedy `hf`).

Envs live in `workers` worker processes (see `turnwise.rollout.workers`). The policy lives here:
`expert` and `random` play inside the workers (the expert needs the env's state), while a model
policy (`hf:`, `vllm:`, `openai:`) answers the pending turns of all workers in one batched
`policy.generate` call, each episode with its own `LLMAgent` so histories never mix. A batch is
sent as soon as every running episode is waiting for the policy, or when the oldest request has
waited `batch_wait` seconds.

Faults: a worker that dies or raises is replaced and its episode retried once, then recorded as
failed (`Trajectory.error`). Ctrl-C is deferred to the loop (a second one interrupts at once):
the workers are stopped, finished trajectories are written, and `KeyboardInterrupt` is raised.

Example:
    >>> import tempfile
    >>> from turnwise.rollout import CollectConfig, collect
    >>> out = tempfile.mkdtemp()
    >>> result = collect(CollectConfig(tasks=3, group_size=2, workers=1, out=out, progress=False))
    >>> result.counts["trajectories"], result.counts["success"]
    (6, 6)
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from turnwise.parsing import Choices, check_choices
from turnwise.rollout.workers import Job, Limits, Worker, WorkerHandle

__all__ = ["BASELINES", "CollectConfig", "CollectResult", "WorkerPool", "collect", "plan_jobs"]

#: Policy specs that play inside the workers and need no model.
BASELINES = ("expert", "random")

# Run settings that define which trajectories a run produces; a resumed run must repeat them.
_IDENTITY = (
    "env",
    "env_kwargs",
    "policy",
    "split",
    "tasks",
    "task_ids",
    "group_size",
    "seed",
    "temperature",
    "top_p",
    "max_tokens",
    "max_turns",
    "choices",
    "images",
)


@dataclass
class CollectConfig:
    """Collect trajectories of a policy on the first N tasks of a split, K episodes per task, in
    worker processes, into Parquet shards with a manifest (resumable)."""

    env: Annotated[str, tyro.conf.arg(metavar="ENV_ID")] = "turnwise/KeyDoor-v0"
    """The env to collect on (any registered single-agent id)."""
    policy: Annotated[str, tyro.conf.arg(metavar="SPEC")] = "expert"
    """`expert`, `random`, `hf:PATH`, `vllm:PATH` or `openai:URL#MODEL`."""
    out: Annotated[Path, tyro.conf.arg(metavar="DIR")] = Path("runs/rollouts")
    """Output folder: manifest.json and shards/part-*.parquet."""
    split: str = "train"
    """The split whose tasks are played."""
    tasks: Annotated[int, tyro.conf.arg(metavar="N")] = 16
    """Play the first N tasks of the split."""
    task_ids: tuple[str, ...] = ()
    """Play these tasks of the split instead (in this order); `tasks` is then their number."""
    group_size: Annotated[int, tyro.conf.arg(metavar="K")] = 1
    """Episodes per task and seed (a group: same group_id, different sampling seeds)."""
    workers: Annotated[int, tyro.conf.arg(metavar="W")] = 2
    """Env worker processes (one env each, reused across episodes)."""
    seed: int = 0
    """Run seed: derives every env seed and sampling seed."""
    resume: bool = False
    """Continue the run in --out, skipping the episodes it has written."""
    env_kwargs: Annotated[str, tyro.conf.arg(metavar="JSON")] = ""
    """Env constructor keyword arguments, as a JSON object, e.g. '{"difficulty": "easy"}'."""
    temperature: float = 1.0
    """Sampling temperature of a model policy (0: greedy)."""
    top_p: float = 1.0
    """Nucleus sampling of a model policy."""
    max_tokens: int = 128
    """Most tokens a model policy generates per turn."""
    choices: Choices = "text"
    """How a model policy names its action: `text` (it writes the command) or `number` (the
    prompt numbers the env's admissible actions and it answers with one; see
    `turnwise.agents.PromptTemplate`)."""
    images: bool = False
    """Attach each turn's screenshot to the model's prompt (GUI and pixel envs; the policy must
    be a vision model behind an OpenAI-compatible server, `openai:URL#MODEL`)."""
    max_turns: int | None = None
    """Truncate episodes after this many turns (`agent_max_turns`), besides the env's own limit."""
    turn_timeout: float | None = None
    """Seconds a turn (policy answer + env step) may take; then the episode is truncated
    (`turn_time_limit`) after its last complete turn."""
    episode_timeout: float | None = None
    """Seconds an episode may take (`episode_time_limit`)."""
    shard_size: int = 256
    """Trajectories per Parquet shard."""
    flush_seconds: float = 30.0
    """Write a shard at least this often while finished trajectories wait."""
    batch_wait: float = 0.05
    """Seconds a policy request may wait for others to join its batch."""
    retries: int = 1
    """Times an episode is retried after its worker died or raised, before it is recorded as
    failed."""
    backend: Literal["local", "ray"] = "local"
    """Where env workers run: local processes, or Ray actors (`pip install 'turnwise[ray]'`)."""
    ray_address: str | None = None
    """With `--backend ray`: an existing cluster (`auto`, `ray://HOST:10001`); default: start
    Ray on this machine for the run."""
    ray_cpus: float = 1.0
    """With `--backend ray`: CPUs each env actor reserves on the cluster."""
    prefetch: int = 2
    """Episodes queued on each worker at a time when the policy plays inside the workers
    (`expert`, `random`), so a worker goes straight on to its next episode."""
    start_method: Literal["forkserver", "spawn"] = "forkserver"
    """How worker processes are started."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("tasks", "group_size", "workers", "shard_size", "max_tokens", "prefetch"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("turn_timeout", "episode_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"--max-turns must be at least 1, got {self.max_turns}")
        if self.ray_address and self.backend != "ray":
            raise ValueError("--ray-address needs --backend ray")
        if self.retries < 0:
            raise ValueError(f"--retries must be >= 0, got {self.retries}")
        check_choices(self.choices, "--choices")
        self.out = Path(self.out)
        self.task_ids = tuple(self.task_ids)
        if self.task_ids:
            if len(set(self.task_ids)) != len(self.task_ids):
                raise ValueError("--task-ids has duplicates")
            self.tasks = len(self.task_ids)
        self.env_kwargs_dict()  # fail early on bad JSON

    def env_kwargs_dict(self) -> dict[str, Any]:
        """`env_kwargs` parsed."""
        from turnwise.cli._common import parse_env_kwargs

        return parse_env_kwargs(self.env_kwargs)

    def identity(self) -> dict[str, Any]:
        """The settings that decide which trajectories the run produces."""
        data = asdict(self)
        # Parsed, so that '{"a": 1}' and '{"a":1}' are the same run.
        data["env_kwargs"] = self.env_kwargs_dict()
        data["task_ids"] = list(self.task_ids)
        # A run of the first N tasks has no task list (and reads as it did before the option).
        # Likewise a run whose agent writes its actions (the default) has no `choices`, and a
        # text-only one no `images`.
        skip = {"task_ids"} if not self.task_ids else set()
        skip |= {"choices"} if self.choices == "text" else set()
        skip |= {"images"} if not self.images else set()
        return {k: data[k] for k in _IDENTITY if k not in skip}


@dataclass
class CollectResult:
    """What a `collect` call did."""

    out: Path
    manifest: Path
    counts: dict[str, int]
    """Totals of the whole run folder (earlier sessions of a resumed run included)."""
    collected: int = 0
    """Trajectories finished by this call."""
    skipped: int = 0
    """Episodes skipped because an earlier session had written them."""
    turns: int = 0
    tokens: int = 0
    seconds: float = 0.0
    restarts: int = 0
    """Worker processes replaced after dying or hanging."""
    shards: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the plan
def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any JSON-able parts (stable across Python versions and runs).

    Example:
        >>> derive_seed("env", 0, "easy-train-00000") == derive_seed("env", 0, "easy-train-00000")
        True
    """
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


def plan_jobs(config: CollectConfig, task_ids: list[str]) -> list[Job]:
    """Every episode of the run, in order: for each task, its `group_size` members."""
    jobs = []
    for index, task_id in enumerate(task_ids):
        env_seed = derive_seed("env", config.seed, task_id)
        group_id = f"{task_id}@{env_seed}"
        for member in range(config.group_size):
            ident = [config.env, config.env_kwargs, config.split, task_id, env_seed, member]
            ident += [config.policy, config.seed]
            jobs.append(
                Job(
                    task_id=task_id,
                    task_index=index,
                    seed=env_seed,
                    member=member,
                    sampling_seed=derive_seed("sample", config.seed, task_id, member),
                    group_id=group_id,
                    trajectory_id=hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32],
                )
            )
    return jobs


# --------------------------------------------------------------------------- the loop
@dataclass
class _Slot:
    worker: Worker
    job: Job | None = None
    agent: Any = None
    state: Literal["idle", "env", "policy"] = "idle"
    since: float = 0.0
    obs: Any = None
    info: Any = None
    backlog: list[Job] = field(default_factory=list)
    """Episodes already sent to the worker, played after `job` (in-worker policies only)."""


class _Stop:
    """Ctrl-C as a flag checked by the loop; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _deferred_sigint(stop: _Stop) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; elsewhere KeyboardInterrupt never comes
        return
    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def collect(
    config: CollectConfig,
    *,
    policy: Any = None,
    on_trajectory: Callable[[Any], None] | None = None,
    pool: WorkerPool | None = None,
) -> CollectResult:
    """Run (or resume) the collection `config` describes; see the module docstring.

    Args:
        config: what to collect and where.
        policy: an already loaded `Policy` to use instead of loading `config.policy` (which is
            still recorded as the spec).
        on_trajectory: called with each trajectory as it finishes (after it is buffered).
        pool: keep the env workers alive after the run, for the next collection with the same
            env, settings and limits (a trainer collects every iteration); local processes only.

    Raises:
        KeyboardInterrupt: after a clean stop on Ctrl-C (finished trajectories are written).
    """
    from turnwise.rollout.progress import Progress
    from turnwise.rollout.store import RolloutStore

    started = time.perf_counter()
    env_kwargs = config.env_kwargs_dict()
    task_ids, env_info = _inspect_env(config, env_kwargs)
    jobs = plan_jobs(config, task_ids)
    store = RolloutStore(
        config.out,
        config.identity(),
        resume=config.resume,
        shard_size=config.shard_size,
        flush_seconds=config.flush_seconds,
        extra={"envs": {config.env: env_info}, "planned": len(jobs)},
    )
    todo = [job for job in jobs if job.key not in store.done]
    result = CollectResult(
        out=config.out,
        manifest=config.out / "manifest.json",
        counts=store.counts,
        skipped=len(jobs) - len(todo),
    )
    if config.policy not in BASELINES and policy is None:
        from turnwise.agents.specs import load_policy

        policy = load_policy(config.policy)
    loop = _Loop(config, env_kwargs, env_info, store, policy, on_trajectory, result)
    loop.pool = pool if config.backend == "local" else None
    stop = _Stop()
    status = "interrupted"
    backend: Any = contextlib.nullcontext()
    if config.backend == "ray" and todo:
        from turnwise.rollout.ray_backend import ray_session

        backend = ray_session(config.ray_address, config.workers)
    with backend, Progress(len(jobs), len(jobs) - len(todo), enabled=config.progress) as progress:
        loop.progress = progress
        try:
            with _deferred_sigint(stop):
                loop.run(todo, stop)
                if not stop.requested:
                    status = "complete"
        finally:
            loop.shutdown()
            store.close(status)
    result.counts = dict(store.counts, written=sum(s["trajectories"] for s in store.shards))
    result.shards = [s["file"] for s in store.shards]
    result.seconds = time.perf_counter() - started
    if stop.requested:
        raise KeyboardInterrupt
    return result


def _inspect_env(config: CollectConfig, env_kwargs: dict[str, Any]) -> tuple[list[str], Any]:
    """The task ids to play and what the manifest says about the env."""
    import turnwise
    from turnwise.registry import entry

    record = entry(config.env)
    if record.multi_agent:
        raise ValueError(f"{config.env} is multi-agent; collect one seat via SingleAgent")
    env = turnwise.make(config.env, **env_kwargs)
    try:
        unwrapped = env.unwrapped
        splits = getattr(unwrapped, "splits", (config.split,))
        if config.split not in splits:
            raise ValueError(f"{config.env} has no split {config.split!r}; it has {splits}")
        all_tasks = list(unwrapped.tasks(config.split))
    finally:
        env.close()
    if config.task_ids:
        known = set(all_tasks)
        unknown = [t for t in config.task_ids if t not in known]
        if unknown:
            raise ValueError(
                f"{config.env} split {config.split!r} has no task {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else "")
            )
        return list(config.task_ids), _env_info(record, env_kwargs, len(all_tasks))
    if config.tasks > len(all_tasks):
        raise ValueError(
            f"{config.env} has {len(all_tasks)} tasks in split {config.split!r}; "
            f"--tasks {config.tasks} asks for more"
        )
    return all_tasks[: config.tasks], _env_info(record, env_kwargs, len(all_tasks))


def _forkserver_preload(entry_point: str) -> list[str]:
    """What the fork server imports once, before it forks any worker: the main module (as
    multiprocessing does by default), the worker code and the env's own module.

    A worker forked from a server that has these loaded starts in milliseconds; otherwise each
    one imports turnwise, gymnasium and numpy again, ~0.2 s of CPU per worker and collection.
    The list takes effect when the server starts (the first collection of the process) and
    later calls change nothing; a module that fails to import there is skipped by
    multiprocessing and imported by the worker as before.

    Example:
        >>> _forkserver_preload("turnwise.envs.keydoor.env:KeyDoorEnv")
        ['__main__', 'turnwise.rollout.workers', 'turnwise.envs.keydoor.env']
    """
    return ["__main__", "turnwise.rollout.workers", entry_point.partition(":")[0]]


def _check_main_importable() -> None:
    """Worker processes (forkserver, spawn) re-import the main module from its file: a script
    read from stdin has none, and every worker would die on start with no useful message."""
    import os
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is not None and not os.path.exists(main_file):
        raise RuntimeError(
            f"the collector's worker processes re-import the main module, and {main_file!r} is "
            "not a file: run the script from a file (guard the collection with "
            '`if __name__ == "__main__":`), or from `python -c`'
        )


def _env_info(record: Any, env_kwargs: dict[str, Any], split_size: int) -> dict[str, Any]:
    return {
        "entry_point": record.entry_point,
        "version": _env_version(record.requires),
        "env_kwargs": env_kwargs,
        "split_size": split_size,
    }


def _env_version(requires: tuple[str, ...]) -> str:
    """The version of the package implementing the env: its engine (textworld, ...) or turnwise."""
    from importlib import metadata

    from turnwise._version import __version__

    for module in requires:
        try:
            return f"{module}=={metadata.version(module)}"
        except metadata.PackageNotFoundError:
            continue
    return f"turnwise=={__version__}"


class WorkerPool:
    """Env worker processes kept between collections.

    A worker that finished its episodes cleanly goes back to the pool, keyed by what it was
    started with (env, env kwargs, split, limits, start method); the next collection with the same
    key takes it instead of starting a process, so it does not import the env and build its
    engine again (seconds per worker for ALFWorld). Workers that were mid-episode when a
    collection stopped are not kept. `close()` (or leaving a `with` block) stops the idle ones.

    Example:
        >>> import tempfile
        >>> with WorkerPool() as pool:
        ...     for k in range(2):
        ...         out = Path(tempfile.mkdtemp())
        ...         _ = collect(CollectConfig(tasks=2, workers=1, out=out, progress=False),
        ...                     pool=pool)
        ...     len(pool)
        1
    """

    def __init__(self) -> None:
        self._idle: dict[str, list[Worker]] = {}

    def __len__(self) -> int:
        return sum(len(workers) for workers in self._idle.values())

    def pids(self) -> list[int]:
        """The process ids of the idle workers."""
        return [w.pid for ws in self._idle.values() for w in ws if w.pid is not None]

    def take(self, key: str, count: int) -> list[Worker]:
        """Up to `count` idle workers started with `key` (removed from the pool)."""
        idle = self._idle.get(key, [])
        taken, self._idle[key] = idle[:count], idle[count:]
        return taken

    def put(self, key: str, worker: Worker) -> None:
        """Keep an idle worker for the next collection with the same key."""
        self._idle.setdefault(key, []).append(worker)

    def close(self) -> None:
        """Stop every idle worker."""
        idle, self._idle = self._idle, {}
        for workers in idle.values():
            for worker in workers:
                worker.stop(timeout=1.0)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the modules may be gone
            self.close()


class _Loop:
    """The scheduler: hands jobs to worker slots, batches policy calls, handles faults."""

    def __init__(
        self,
        config: CollectConfig,
        env_kwargs: dict[str, Any],
        env_info: dict[str, Any],
        store: Any,
        policy: Any,
        on_trajectory: Callable[[Any], None] | None,
        result: CollectResult,
    ) -> None:
        self.config = config
        self.env_kwargs = env_kwargs
        self.env_version = str(env_info["version"])
        self.entry_point = str(env_info["entry_point"])
        self.store = store
        self.policy = policy
        self.on_trajectory = on_trajectory
        self.result = result
        self.limits = Limits(config.max_turns, config.turn_timeout, config.episode_timeout)
        self.slots: list[_Slot] = []
        self.pool: WorkerPool | None = None
        # What a worker is started with: only a worker started alike is reused from the pool.
        started = [config.env, env_kwargs, config.split, asdict(self.limits), config.start_method]
        self.pool_key = json.dumps(started, sort_keys=True, default=str)
        self.progress: Any = None
        # A hung native call ignores SIGALRM; the worker is killed this long after its deadline.
        self.grace = 10.0

    # ------------------------------------------------------------------ main loop
    def run(self, todo: list[Job], stop: _Stop) -> None:
        import multiprocessing
        import multiprocessing.connection

        if not todo:
            return
        _check_main_importable()
        ctx = multiprocessing.get_context(self.config.start_method)
        if self.config.start_method == "forkserver" and self.config.backend != "ray":
            ctx.set_forkserver_preload(_forkserver_preload(self.entry_point))
        count = min(self.config.workers, len(todo))
        args = (self.config.env, self.env_kwargs, self.config.split, self.limits)
        kept = self.pool.take(self.pool_key, count) if self.pool is not None else []
        self.slots = [_Slot(worker) for worker in kept]
        for index in range(len(kept), count):
            handle: Worker
            if self.config.backend == "ray":
                from turnwise.rollout.ray_backend import RayWorkerHandle

                handle = RayWorkerHandle(index, *args, num_cpus=self.config.ray_cpus)
            else:
                handle = WorkerHandle(ctx, index, *args)
            self.slots.append(_Slot(handle))
        for slot in self.slots[len(kept) :]:  # a kept worker said it was ready long ago
            self._wait_ready(slot)
        pending = collections.deque(todo)
        while (pending or any(s.state != "idle" for s in self.slots)) and not stop.requested:
            for slot in self.slots:
                if slot.state == "idle" and pending:
                    self._assign(slot, pending.popleft())
                if self.policy is None:
                    self._prefetch(slot, pending)
            waiting = [s for s in self.slots if s.state == "policy"]
            if waiting:
                oldest = min(s.since for s in waiting)
                stepping = any(s.state == "env" for s in self.slots)
                if not stepping or time.monotonic() - oldest >= self.config.batch_wait:
                    self._answer(waiting, pending)
                    continue
            timeout = self.config.batch_wait if waiting else 0.5
            objects: list[Any] = []
            for slot in self.slots:
                if slot.state == "env":
                    objects += slot.worker.waitables()
            ready = set(multiprocessing.connection.wait(objects, timeout)) if objects else set()
            for slot in self.slots:
                if slot.state == "env" and any(o in ready for o in slot.worker.waitables()):
                    self._receive(slot, pending)
            self._watchdog(pending)
            self.store.maybe_flush()

    def _wait_ready(self, slot: _Slot) -> None:
        """Wait for a fresh worker's first message; an env it cannot make stops the run."""
        conn = slot.worker.conn
        assert conn is not None
        try:
            message = conn.recv()
        except (EOFError, ConnectionError, OSError):
            raise RuntimeError(
                f"env worker {slot.worker.slot} died on start: {slot.worker.death()}"
            ) from None
        if message[0] != "ready":
            raise RuntimeError(f"env worker could not make {self.config.env}:\n{message[1]}")

    def _assign(self, slot: _Slot, job: Job) -> None:
        slot.job = job
        slot.state = "env"
        slot.since = time.monotonic()
        if self.policy is None:
            self._send(slot, ("play", job, self.config.policy))
            return
        from turnwise.agents.agent import LLMAgent
        from turnwise.agents.policy import Sampling
        from turnwise.agents.prompting import template_for
        from turnwise.episode import reset_agent

        sampling = Sampling(
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            max_tokens=self.config.max_tokens,
            seed=job.sampling_seed,
        )
        slot.agent = LLMAgent(
            self.policy,
            template=template_for(
                self.config.env, choices=self.config.choices, images=self.config.images
            ),
            sampling=sampling,
        )
        reset_agent(slot.agent, job.seed)
        self._send(slot, ("reset", job, slot.agent.parser))

    def _prefetch(self, slot: _Slot, pending: collections.deque[Job]) -> None:
        """Queue more episodes on a busy worker, so it never waits for this process in between
        (a worker plays its messages in order; the pipe holds the queued ones)."""
        while slot.state == "env" and pending and len(slot.backlog) + 1 < self.config.prefetch:
            job = pending.popleft()
            try:
                slot.worker.send(("play", job, self.config.policy))
            except (BrokenPipeError, ConnectionError, OSError):
                pending.appendleft(job)  # the worker is gone; its sentinel reports it next
                return
            slot.backlog.append(job)

    def _requeue_backlog(self, slot: _Slot, pending: collections.deque[Job]) -> None:
        """A worker was replaced: the episodes queued on it are played again from the start."""
        pending.extendleft(reversed(slot.backlog))
        slot.backlog.clear()

    def _next_from_backlog(self, slot: _Slot) -> None:
        """After an episode ends, the worker is already playing the next queued one."""
        if slot.state == "idle" and slot.backlog:
            slot.job = slot.backlog.pop(0)
            slot.state = "env"
            slot.since = time.monotonic()

    def _send(self, slot: _Slot, message: Any) -> None:
        """Start an episode; a worker that died while idle is replaced first (no attempt lost)."""
        try:
            slot.worker.send(message)
        except (BrokenPipeError, ConnectionError, OSError):
            slot.worker.restart()
            self.result.restarts += 1
            slot.worker.send(message)

    def _answer(self, waiting: list[_Slot], pending: collections.deque[Job]) -> None:
        """One batched policy call for every episode waiting for it."""
        requests = [s.agent.begin(s.obs, s.info) for s in waiting]
        generations = self.policy.generate(requests)
        if len(generations) != len(requests):
            raise RuntimeError(
                f"policy {self.config.policy!r} returned {len(generations)} generations "
                f"for {len(requests)} requests"
            )
        for slot, generation in zip(waiting, generations, strict=True):
            reply = slot.agent.finish(generation)
            slot.state = "env"
            slot.since = time.monotonic()
            try:
                slot.worker.send(("step", reply, slot.agent.turn_record()))
            except (BrokenPipeError, ConnectionError, OSError):
                self._fault(slot, pending, "worker process died mid-episode", restart=True)

    def _receive(self, slot: _Slot, pending: collections.deque[Job]) -> None:
        conn = slot.worker.conn
        assert conn is not None
        try:
            if not conn.poll():
                raise EOFError  # only the sentinel is ready: the process is gone
            message = conn.recv()
        except (EOFError, ConnectionError, OSError):
            self._fault(slot, pending, slot.worker.death(), restart=True)
            return
        kind = message[0]
        if kind == "ready":  # a replacement worker is up; its episode's answer comes next
            return
        if kind == "obs":
            _, slot.obs, slot.info = message
            slot.state = "policy"
            slot.since = time.monotonic()
        elif kind == "done":
            self._finish(slot, message[1])
        else:
            self._fault(slot, pending, f"the env raised:\n{message[1]}", restart=False)

    def _watchdog(self, pending: collections.deque[Job]) -> None:
        limit = self.limits
        if limit.turn_seconds is None and limit.episode_seconds is None:
            return
        now = time.monotonic()
        for slot in self.slots:
            if slot.state != "env" or slot.job is None:
                continue
            # In-worker agents send nothing until the episode ends: only its limit applies.
            budget = limit.episode_seconds if self.policy is None else limit.turn_seconds
            budget = budget if budget is not None else limit.episode_seconds
            if budget is None or now - slot.since < budget + self.grace:
                continue
            reason = "turn_time_limit" if budget == limit.turn_seconds else "episode_time_limit"
            job = slot.job
            job.attempts += 1
            slot.worker.restart()
            self.result.restarts += 1
            self._requeue_backlog(slot, pending)
            traj = self._empty(job, f"worker did not answer {budget + self.grace:.0f} s; killed")
            traj.truncated = True
            traj.truncation_reason = reason
            self._finish(slot, traj)

    def _fault(self, slot: _Slot, pending: collections.deque[Job], why: str, restart: bool) -> None:
        job = slot.job
        assert job is not None
        if restart:
            slot.worker.restart()
            self.result.restarts += 1
            self._requeue_backlog(slot, pending)
        job.attempts += 1
        slot.state, slot.job, slot.agent = "idle", None, None
        if job.attempts <= self.config.retries:
            pending.appendleft(job)  # retried next, by whichever slot is free first
            self._next_from_backlog(slot)
            return
        traj = self._empty(job, f"{why} (after {job.attempts} attempts)")
        slot.job = job
        self._finish(slot, traj)

    def _empty(self, job: Job, error: str) -> Any:
        from turnwise.trajectory import Trajectory

        return Trajectory(env_id=self.config.env, task_id=job.task_id, seed=job.seed, error=error)

    def _finish(self, slot: _Slot, traj: Any) -> None:
        job = slot.job
        assert job is not None
        traj.id = job.trajectory_id
        traj.group_id = job.group_id
        traj.policy = self.config.policy
        traj.env_version = self.env_version
        traj.metadata.update(
            member=job.member,
            task_index=job.task_index,
            sampling_seed=job.sampling_seed,
            run_seed=self.config.seed,
            # job.attempts counts the tries that failed; a finished episode adds its own.
            attempts=job.attempts + (traj.error is None),
        )
        slot.state, slot.job, slot.agent = "idle", None, None
        self._next_from_backlog(slot)
        self.store.add(traj)
        tokens = sum(len(t.token_ids or ()) for t in traj.turns)
        self.result.collected += 1
        self.result.turns += traj.num_turns
        self.result.tokens += tokens
        if self.progress is not None:
            self.progress.update(traj.success, traj.num_turns, tokens)
        if self.on_trajectory is not None:
            self.on_trajectory(traj)

    def shutdown(self) -> None:
        for slot in self.slots:
            clean = slot.state == "idle" and not slot.backlog and slot.worker.conn is not None
            if self.pool is not None and clean:
                self.pool.put(self.pool_key, slot.worker)
            else:
                slot.worker.stop(timeout=1.0)
        self.slots = []
