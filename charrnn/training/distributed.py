"""Several processes training one model, the PyTorch way: torchrun sets the environment, this module
joins the process group (gloo on CPU, nccl on CUDA) and offers the few collectives training needs.

A single process needs none of it: every helper is a no-op when the world has one member. It does not
launch processes (torchrun does) or decide what to synchronise (the training loop does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Only the main process logs, previews samples and writes checkpoints."""
        return self.rank == 0


def from_env() -> World:
    """The world torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def device(world: World, name: str) -> torch.device:
    """This rank's device for `--device NAME`: with several processes on CUDA, one GPU per local
    rank (set as the current device, as nccl expects)."""
    from charrnn.device import resolve_device

    resolved = torch.device(resolve_device(name))
    if resolved.type != "cuda" or world.size == 1:
        return resolved
    torch.cuda.set_device(world.local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cuda", torch.cuda.current_device())


def init(world: World, device: torch.device) -> None:
    if world.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(world: World, values: list[float], device: torch.device) -> list[float]:
    """Sum a few floats over all ranks (loss sums and counts, stop flags)."""
    if world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_rows(world: World, t: torch.Tensor) -> torch.Tensor:
    """Concatenate each rank's slice along dim 1 (layers × batch × hidden states), in rank order."""
    if world.size == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world.size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=1)


def broadcast(world: World, obj: object) -> object:
    """Rank 0's value of a small picklable object (a path) on every rank."""
    if world.size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
