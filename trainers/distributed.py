"""Data-parallel training over several processes (GPUs, or CPU processes for testing).

Launched by `torchrun --nproc-per-node N` or `accelerate launch --num_processes N` (both set
`RANK`, `WORLD_SIZE` and the rendezvous variables), every process runs the same `Trainer`:

* each rank collects its share of the iteration's task groups (whole groups, so every
  group-relative baseline stays within one rank) with its own env workers and its own copy of
  the policy;
* the trajectories are then shared (`gather`), so metrics and ARPO's replay buffer see them all;
* each rank computes the loss of its own rows, divided by the **global** token or row count of
  the minibatch, and the gradients are **summed** across ranks before every optimizer step
  (`sync_grads`): the update is the one a single process would make on the whole batch, and
  every rank's weights stay identical;
* rank 0 writes metrics and checkpoints.

With `--fsdp` the policy (and the reference) are sharded instead (FSDP2, `shard`): each rank
holds 1/N of their weights, gradients and optimizer state. Every forward pass is then a
collective, so every rank runs the same number of them (the trainer pads with empty passes);
FSDP sums the gradient shards itself, and generation runs on a separate full copy per rank
that receives the gathered weights after each update (as a vLLM engine would).

One process (no launcher) is `Distributed.single()`: every call is then free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place among the data-parallel ranks."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def single(cls) -> Distributed:
        return cls()

    @classmethod
    def from_env(cls) -> Distributed:
        """Join the process group a launcher described in the environment (`WORLD_SIZE` > 1),
        with NCCL on GPUs and gloo on CPUs; one process otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls.single()
        import torch
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend=backend)
        return cls(dist.get_rank(), dist.get_world_size(), local_rank)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    def share(self, items: Sequence[Any]) -> list[Any]:
        """This rank's part of a list: items rank, rank + world, ..."""
        return list(items[self.rank :: self.world])

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over ranks (float64)."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return [float(v) for v in tensor.cpu()]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_grads(self, params: Iterable[Any]) -> None:
        """Sum the gradients of `params` over ranks (a missing gradient counts as zero), in
        one flat all-reduce."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def most(self, value: int) -> int:
        """The largest `value` over ranks."""
        return max(self.gather(value)) if self.enabled else value

    # ---------------------------------------------------------------- sharded models (FSDP2)
    def shard(self, model: Any) -> Any:
        """Shard `model` over the ranks with FSDP2 (`fully_shard`): each transformer block
        (the model's `_no_split_modules` classes) is a unit, the rest (embeddings, head) the
        root's. Gradients are **summed** over ranks, as `sync_grads` sums them: the loss
        already carries the global denominator. Returns the model, now sharded in place."""
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if not self.enabled:
            raise ValueError("sharding needs several ranks (torchrun or accelerate launch)")
        block_types = set(getattr(model, "_no_split_modules", None) or ())
        blocks = [m for m in model.modules() if type(m).__name__ in block_types]
        if not blocks:
            raise ValueError(
                f"cannot find the transformer blocks of {type(model).__name__} to shard: "
                "its `_no_split_modules` names none of its modules"
            )
        for block in blocks:
            fully_shard(block)
        fully_shard(model)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(1.0)  # a sum, not FSDP's default mean
                module.set_force_sum_reduction_for_comms(True)  # gloo has no pre-scaled sum
        return model

    @staticmethod
    def full_state_dict(model: Any, *, main_only: bool = False) -> dict[str, Any]:
        """A sharded model's whole state dict, gathered (a collective: every rank calls it).
        With `main_only` it lands in CPU memory on rank 0 alone (others get `{}`)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=main_only)
        return dict(get_model_state_dict(model, options=options))

    @staticmethod
    def full_optimizer_state(model: Any, optimizer: Any) -> dict[str, Any]:
        """The optimizer state of a sharded model, whole, on rank 0 (a collective)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return dict(get_optimizer_state_dict(model, optimizer, options=options))

    @staticmethod
    def load_full(
        model: Any, state: dict[str, Any], optimizer: Any = None, optim: Any = None
    ) -> None:
        """Load whole (unsharded) states into a sharded model and its optimizer; every rank
        passes the same full states (read from one checkpoint)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, state, options=options)
        if optimizer is not None and optim is not None:
            set_optimizer_state_dict(model, optimizer, optim, options=options)

    def _device(self) -> Any:
        import torch
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
