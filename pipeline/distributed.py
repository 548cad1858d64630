"""Several processes under torchrun: one global batch split across ranks, identical decisions.

The engine (`train.engine: ddp`) replicates the model on every rank and
all-reduces the *trainable* parameters' gradients itself, in buckets, after the
routed backward, instead of wrapping the model in torch's
DistributedDataParallel. DDP fixes the parameters it reduces when it wraps the
model, so freezing after wrapping fails the next backward (or, with
`find_unused_parameters=True`, still all-reduces the frozen buckets as zeros,
saving no communication); unfreezing a parameter frozen at wrap time lets ranks
drift apart silently; a routed group with no local rows would leave DDP
waiting; and DDP's reducer averages during the backward, so a gradient hook
sees each rank's local gradient. Reducing after the backward, over exactly the
parameters the governance state leaves trainable, has none of these: frozen
groups send no bytes, every rank sees the same averaged gradient, and the
parameter set may change at any step boundary. The price is no overlap of
communication with the backward (tools/bench_distributed.py measures it).

The other engine (`train.engine: fsdp2`) shards every parameter across ranks
with FSDP2 (`fully_shard` per transformer block and at the root). FSDP2 reads
`requires_grad` at every unshard and reduce-scatter, so freezing needs nothing
more and frozen groups are not reduced; the routed modules run on the
unsharded weights inside each block's forward, so routing is unchanged. Weights
and gradients are then shards: gradient norms, the agreement digest and
checkpoints gather what they need (a checkpoint is the full state dict, so a
run resumes at any world size and with either engine).

Decisions are identical by construction: routing reads every rank's per-sample
losses, gathered in rank order (the global batch's order); the core's
observations are rank 0's, broadcast as float64; and every `agree_every` steps
(and at each checkpoint and transition) all ranks compare a digest of the
governance state and of the weights, stopping the job on a mismatch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from govtrain.governance.errors import GovtrainError

BUCKET_BYTES = 25 * 2**20  # as DDP's default bucket_cap_mb


class DistributedError(GovtrainError):
    """Ranks disagree, or the job cannot be split across them."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank `rank` of `size`, talking over `backend`."""

    rank: int
    size: int
    local_rank: int
    backend: str

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where this rank trains and its collectives' tensors live."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def describe(self, engine: str = "ddp") -> dict[str, object]:
        return {"world_size": self.size, "backend": self.backend, "engine": engine}


def current_world() -> World | None:
    """This process's place in a process group someone else initialised (a Trainer's
    DDP, Lightning's strategy); None for one process."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return World(dist.get_rank(), dist.get_world_size(), local, str(dist.get_backend()))


def launched() -> bool:
    """True under torchrun (or any launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def restarted() -> bool:
    """True in a group torchrun restarted after a worker failed (`--max-restarts`)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def job_id() -> str | None:
    """torchrun's run id: the same on every rank and across restarts of one job."""
    return os.environ.get("TORCHELASTIC_RUN_ID")


def join(timeout_s: float, cuda: bool) -> World:
    """Join the process group (NCCL when training on CUDA, else gloo); collectives time
    out after `timeout_s` instead of hanging on a lost rank."""
    backend = "nccl" if cuda else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        timeout = timedelta(seconds=timeout_s)
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        dist.init_process_group(
            backend, store=_attempt_store(rank, size, timeout), rank=rank, world_size=size,
            timeout=timeout,
        )  # fmt: skip
    return World(dist.get_rank(), dist.get_world_size(), local_rank, backend)


# torch documents Store, TCPStore and PrefixStore as public, but re-exports them from its
# C extension without `as`, which pyright reads as private
def _attempt_store(rank: int, size: int, timeout: timedelta) -> dist.Store:  # pyright: ignore[reportPrivateImportUsage]
    """The rendezvous store, its keys prefixed by torchrun's restart count.

    torchrun's agent keeps one store across restarts of the worker group, so a
    restarted rank could read the address a killed rank published in the
    previous attempt and fail to connect (measured: gloo "connectFullMesh failed
    ... Connection refused" on the first restart). A prefix per attempt keeps
    each attempt's keys apart.
    """
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)
    store = dist.TCPStore(  # pyright: ignore[reportPrivateImportUsage]
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size,
        is_master=rank == 0 and not agent, timeout=timeout,
    )  # fmt: skip
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"govtrain/attempt_{attempt}", store)  # pyright: ignore[reportPrivateImportUsage]


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def finish() -> NoReturn:
    """End a rank whose work is done: wait for every rank, tear the group down, flush
    what was printed, and exit at once.

    Exiting through the interpreter's own teardown instead was seen to abort a rank
    after a complete FSDP2 job on gloo ("terminate called without an active
    exception", in about 1 of 10 two-process runs, after destroy_process_group had
    returned on both ranks): torchrun reports that as a failed job, and with
    --max-restarts would restart a finished one. The log is sealed and synced by now.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@dataclass(frozen=True)
class Shard:
    """This rank's rows [offset, offset + local) of a global batch, with every rank's
    per-sample losses (the global batch's, in its order) for routing."""

    offset: int
    local: int
    losses: Tensor

    def local_rows(self, index: tuple[int, ...]) -> tuple[int, ...]:
        """The global routed indices that fall on this rank, as local row numbers."""
        return tuple(i - self.offset for i in index if self.offset <= i < self.offset + self.local)


def split(batch: Tensor, world: World) -> Tensor:
    """This rank's contiguous share of a global batch; the batch must divide evenly."""
    if batch.shape[0] % world.size:
        raise DistributedError(
            f"governance.router.batch_size ({batch.shape[0]}) must be divisible by the "
            f"world size ({world.size})"
        )
    local = batch.shape[0] // world.size
    return batch[world.rank * local : (world.rank + 1) * local]


def gather(local: Tensor, world: World) -> Shard:
    """Every rank's per-sample losses in rank order: the global batch's."""
    parts = [torch.empty_like(local) for _ in range(world.size)]
    dist.all_gather(parts, local.detach().contiguous())
    return Shard(world.rank * local.shape[0], local.shape[0], torch.cat(parts))


def broadcast_floats(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's values, as float64, on every rank."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()


def all_reduce_gradients(params: list[nn.Parameter], world: World) -> int:
    """Average the gradients of `params` (the trainable ones, in a fixed order) over ranks in
    buckets of about BUCKET_BYTES; returns the bytes all-reduced.

    A parameter without a gradient contributes zeros, so every rank reduces the
    same buckets whatever its routed rows were.
    """
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    sent = 0
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat.div_(world.size)
        sent += flat.numel() * flat.element_size()
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
    return sent


def _buckets(grads: list[Tensor]) -> list[list[Tensor]]:
    """Consecutive gradients of one dtype and device, up to BUCKET_BYTES each."""
    out: list[list[Tensor]] = []
    size = 0
    for g in grads:
        nbytes = g.numel() * g.element_size()
        same = out and out[-1][0].dtype == g.dtype and out[-1][0].device == g.device
        if not same or size + nbytes > BUCKET_BYTES:
            out.append([])
            size = 0
        out[-1].append(g)
        size += nbytes
    return out


def agree(digest: str, world: World) -> list[str]:
    """Every rank's SHA-256 hex digest, in rank order."""
    mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=world.device)
    parts = [torch.empty_like(mine) for _ in range(world.size)]
    dist.all_gather(parts, mine)
    return [bytes(p.tolist()).hex() for p in parts]


def check_all(error: BaseException | None, world: World) -> None:
    """A collective pass/fail: when any rank failed a step every rank takes, all stop.

    The failing rank re-raises its own error; the others name the ranks that failed.
    """
    mine = torch.tensor([int(error is not None)], dtype=torch.int32, device=world.device)
    flags = [torch.zeros_like(mine) for _ in range(world.size)]
    dist.all_gather(flags, mine)
    failed = [r for r, f in enumerate(flags) if f.item()]
    if error is not None:
        raise error
    if failed:
        raise DistributedError(f"rank(s) {failed} failed (see their error); stopping")


def trainable_digest(params: list[nn.Parameter]) -> str:
    """SHA-256 over the bytes of `params`, in order (whole tensors, gathered from their
    shards under FSDP2): ranks that trained alike agree on it."""
    h = hashlib.sha256()
    for p in params:
        h.update(full(p.detach()).cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def shard(model: nn.Module) -> None:
    """FSDP2: each transformer block its own unit, the rest (embeddings, final norm, the
    tied head) the root's."""
    from torch.distributed.fsdp import fully_shard

    blocks = model.get_submodule("transformer.h")
    assert isinstance(blocks, nn.ModuleList)  # GPT-2's blocks (pipeline/models.py)
    for block in blocks:
        fully_shard(block)
    fully_shard(model)


def full(t: Tensor) -> Tensor:
    """The whole tensor: a DTensor's shards gathered (a collective), anything else as is."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def group_norms(grads: list[list[Tensor]], device: torch.device) -> list[Tensor]:
    """The L2 norm of each list of (sharded) gradients: local sums of squares, one
    all-reduce, so every rank gets the norms of the whole gradients."""
    sums = torch.stack(
        [
            torch.stack([_local(g).float().square().sum() for g in gs]).sum()
            if gs
            else torch.zeros((), device=device)
            for gs in grads
        ]
    )
    dist.all_reduce(sums)
    return list(sums.sqrt())


def _local(t: Tensor) -> Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def sharded_bytes(params: list[nn.Parameter]) -> int:
    """Bytes of the whole gradients FSDP2 reduce-scatters for `params` (those with one)."""
    return sum(p.numel() * p.element_size() for p in params if p.grad is not None)
