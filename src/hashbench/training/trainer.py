"""The one training loop every deep method runs through.

A method supplies its networks, optimisers, data plan and a per-batch loss (the `DeepMethod` hooks in
``hashbench.methods.base``); the trainer owns the loop: DataLoaders, device, mixed precision, the non-finite loss
stop, progress, per-epoch logging, checkpoints and resume, and distributed data parallel training under torchrun.

One step: every stream's next batch goes to the device; the method's `training_step` (inside DDP's forward when
distributed, so gradients are averaged across processes) returns the loss and its parts; a loss that is not finite
stops the run with one line; then every optimiser's gradients are zeroed, one backward pass (scaled in float16), every
optimiser steps, and per-step schedulers advance. After each epoch the method's `on_epoch_end` hook runs (WSDHQ's
codebook refresh), per-epoch schedulers advance, one history row is logged and a checkpoint is saved (also every
`checkpoint_every` steps). A resumed run restores modules, optimisers, schedulers, the gradient scaler, the method's
own state, every generator and its place in the epoch, so on the CPU it ends byte-identical to an uninterrupted one.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import HashbenchError
from .checkpoint import Checkpoints, capture_rng, restore_rng, run_key
from .loaders import Items, Plan, item_seeds, iterate, loader
from .runtime import Runtime, note, place


@dataclass
class Optim:
    """An optimiser and its lr schedule, stepped after every `"epoch"` or every `"step"`."""

    optimizer: torch.optim.Optimizer
    scheduler: object | None = None
    every: str = "epoch"


class _Step(nn.Module):
    """The method's per-batch loss as a module over everything it trains, so DDP can wrap it."""

    def __init__(self, method, nets: nn.ModuleDict, ctx):
        super().__init__()
        self.nets = nets
        self._method, self._ctx = method, ctx

    def forward(self, batch):
        return self._method.training_step(batch, self._ctx)


class Trainer:
    """Runs a DeepMethod's training on `runtime`; its `log(row, images_per_second)` receives each epoch's row
    (rank 0).

    The trainer is also the context the method's hooks receive: `device`, `epoch`, `step` (global, from 0),
    `rank`, `world_size`, `per_epoch` and `total` (steps), `autocast()` and `merge_rows()`."""

    def __init__(self, method, runtime: Runtime | None = None):
        self.method, self.runtime = method, runtime or Runtime()
        self.device = self.runtime.device
        self.rank, self.world_size = self.runtime.rank, self.runtime.world_size
        self.epoch = self.step = 0
        self.resumed_from: dict | None = None
        self.items_seen, self.seconds = 0, 0.0

    # ------------------------------------------------------------------------------------- context for methods
    def autocast(self):
        return self.runtime.autocast()

    def merge_rows(self, rows: np.ndarray, filled: np.ndarray) -> np.ndarray:
        """Rows filled by different processes, merged (the mean where several filled a row, this process's value
        where none did); unchanged in a single process."""
        if self.world_size == 1:
            return rows
        dev = self.device if self.device.type == "cuda" else torch.device("cpu")
        total = torch.from_numpy(rows * filled[:, None]).to(dev)
        count = torch.from_numpy(filled.astype(rows.dtype)).to(dev)
        torch.distributed.all_reduce(total)
        torch.distributed.all_reduce(count)
        merged = (total / count.clamp(min=1)[:, None]).cpu().numpy()
        return np.where((count.cpu().numpy() > 0)[:, None], merged, rows).astype(rows.dtype)

    # ---------------------------------------------------------------------------------------------- the loop
    def fit(self, train) -> list[dict]:
        self._prepare(train)
        start = self._resume()
        bar = tqdm(total=self.total, initial=min(start[0] * self.per_epoch + start[1], self.total),
                   desc=f"{self.method.name} steps", unit="step", disable=not self.runtime.progress)
        try:  # the bar is closed before an error line is printed
            for epoch in range(start[0], math.ceil(self.total / self.per_epoch)):
                self._epoch(epoch, start if epoch == start[0] else (epoch, 0, {}), bar)
        finally:
            bar.close()
        self.method.on_train_end(self)
        self.loaders = {}  # persistent workers end with their loaders
        return self.history

    def discard_checkpoint(self) -> None:
        """Remove this run's checkpoint: the train stage calls it once the model and metrics are written, so a run
        stopped between the last step and those writes (or refused because params.yaml changed meanwhile) still
        resumes at its end."""
        if self.store is not None and self.runtime.main:
            self.store.remove()

    def _prepare(self, train) -> None:
        """The method's pieces on the device (wrapped in DDP when distributed), its data plan and loaders."""
        m, rt = self.method, self.runtime
        m.setup(train, self)
        plan: Plan = m.plan(train)
        self.nets = place(nn.ModuleDict(m.modules()), self.device)
        self.nets.train()  # an encode before fit leaves them in eval mode
        for frozen in m.frozen_modules().values():
            place(frozen, self.device)
        self.optims = m.optimizers()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=rt.precision == "fp16")
        self.model = _Step(m, self.nets, self)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)  # rank 0's weights
            if self.rank > 0:  # dropout and other draws differ between processes
                torch.manual_seed(int(np.random.SeedSequence([m.seed, self.rank]).generate_state(1)[0]))
        self.streams = list(plan.streams.items())
        self.keys = {name: (m.seed, i) for i, (name, _) in enumerate(self.streams)}
        self.per_epoch = self.streams[0][1].plan.steps(self.world_size)
        if self.per_epoch == 0:
            raise HashbenchError(f"{m.name}: the {len(train)} training items give no full batch per epoch in each of "
                                 f"{self.world_size} process(es); lower {m.name}.batch_size or nproc")
        self.total = plan.iterations if plan.iterations is not None else plan.epochs * self.per_epoch
        self.store = self._store(plan) if rt.checkpoints is not None else None
        self.history, self.speeds = [], []
        self.loaders = {name: loader(Items(s.fields), rt.workers, self.device.type == "cuda")
                        for name, s in self.streams}

    def _resume(self) -> tuple:
        """(epoch, batch, partial sums) to start from: the checkpoint's place, or the beginning."""
        state = self.store.load() if self.store is not None else None
        if state is None:
            return 0, 0, {}
        start = self._restore(state)
        self.history, self.speeds = list(state["history"]), list(state["speeds"])
        self.resumed_from = {"epoch": start[0], "batch": start[1]}
        if self.runtime.main:
            note(f"{self.method.name}: resuming from {self.store.path} at epoch {start[0] + 1} of "
                 f"{math.ceil(self.total / self.per_epoch)}, batch {start[1]} (same params, data and code)")
            for row, speed in zip(self.history, self.speeds):
                self._log(row, speed)
        return start

    def _epoch(self, epoch: int, start: tuple, bar) -> None:
        """Steps of `epoch` from batch start[1] on (with the partial sums start[2]), then its row and checkpoint."""
        m, store = self.method, self.store
        self.epoch, skip, sums = epoch, start[1], dict(start[2])
        steps = range(epoch * self.per_epoch, min((epoch + 1) * self.per_epoch, self.total))
        m.on_epoch_start(epoch, self)
        iters = {}
        for name, stream in self.streams:
            batches = stream.plan.batches(self.keys[name], epoch, steps, self.rank, self.world_size)
            self.loaders[name].batch_sampler.batches = [
                list(zip(b.tolist(), item_seeds(self.keys[name], step, self.rank, len(b)).tolist()))
                for step, b in zip(steps, batches)][skip:]
            iters[name] = iterate(self.loaders[name])
        began, seen = time.perf_counter(), 0
        for b in range(skip, len(steps)):
            self.step = steps[b]
            batch = {name: self._to_device(next(iters[name])) for name, _ in self.streams}
            seen += sum(len(x["index"]) for x in batch.values()) * self.world_size
            value, parts, lr = self._step(batch[self.streams[0][0]] if len(batch) == 1 else batch, epoch, b)
            for key, v in {"loss": value, **parts}.items():
                sums[key] = sums.get(key, 0.0) + (v.detach().item() if torch.is_tensor(v) else float(v))
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{value:.4f}")
            every = self.runtime.checkpoint_every
            if store is not None and every and (self.step + 1) % every == 0 and b + 1 < len(steps):
                self._save((epoch, b + 1, sums))
        seconds = time.perf_counter() - began
        self.items_seen, self.seconds = self.items_seen + seen, self.seconds + seconds
        row = {"epoch": epoch, **{k: v / len(steps) for k, v in sums.items()}, "lr": lr, **m.on_epoch_end(epoch, self)}
        for o in self.optims:
            if o.every == "epoch" and o.scheduler is not None:
                o.scheduler.step()
        self.history.append(row)
        self.speeds.append(round(seen / max(seconds, 1e-9), 2))
        self._log(row, self.speeds[-1])
        if store is not None:
            self._save((epoch + 1, 0, {}))

    def _step(self, batch, epoch: int, b: int) -> tuple:
        """One optimisation step: (loss value, parts, the lr it used)."""
        loss, parts = self.model(batch)
        value = loss.item()
        self._check_finite(value, epoch, b)
        for o in self.optims:
            o.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for o in self.optims:
            self.scaler.step(o.optimizer)
        self.scaler.update()
        lr = self.optims[0].optimizer.param_groups[0]["lr"]
        for o in self.optims:
            if o.every == "step" and o.scheduler is not None:
                o.scheduler.step()
        return value, parts, lr

    # ------------------------------------------------------------------------------------------------ helpers
    def _to_device(self, batch: dict) -> dict:
        return {k: v if k == "index" else place(v, self.device) for k, v in batch.items()}

    def _log(self, row: dict, speed: float) -> None:
        if self.runtime.log is not None and self.runtime.main:
            self.runtime.log(row, speed)

    def _check_finite(self, value: float, epoch: int, batch: int) -> None:
        finite = mine = math.isfinite(value)
        if self.world_size > 1:  # every process stops together
            flag = torch.tensor([float(finite)], device=self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
            finite = bool(flag.item())
        if not finite:
            if self.store is not None and self.runtime.main:
                self.store.remove()
            loss = f"the loss is {value}" if not mine else "the loss of another process is not finite"
            raise HashbenchError(f"{self.method.name}: {loss} at epoch {epoch + 1}, batch {batch + 1} "
                                 f"(step {self.step + 1}); training stopped and no model was written (a smaller lr "
                                 f"may help)")

    def _store(self, plan: Plan) -> Checkpoints:
        m, rt = self.method, self.runtime
        data = {f"{s}.{f}": field.source.fingerprint() for s, stream in plan.streams.items()
                for f, field in stream.fields.items()}
        key = run_key({"method": m.name, "bits": m.bits, "seed": m.seed, "params": m.params,
                       "dataset": {**vars(m.info), "modalities": sorted(m.info.modalities)}, "device": self.device.type, "precision": rt.precision,
                       "world_size": self.world_size, "data": data, "extra": m.fingerprint()})
        return Checkpoints(rt.checkpoints, key)

    def _save(self, position: tuple) -> None:
        mine = {"rng": capture_rng(self.device), "method": self.method.train_state()}
        ranks = [mine]
        if self.world_size > 1:
            ranks = [None] * self.world_size
            torch.distributed.all_gather_object(ranks, mine)
        if self.runtime.main:
            epoch, batch, sums = position
            modules = {k: v.detach().cpu() for k, v in self.nets.state_dict().items()}
            schedulers = [o.scheduler.state_dict() if o.scheduler is not None else {} for o in self.optims]
            self.store.save({"position": [epoch, batch], "sums": sums, "history": self.history,
                             "speeds": self.speeds, "modules": modules, "schedulers": schedulers,
                             "optimizers": [o.optimizer.state_dict() for o in self.optims],
                             "scaler": self.scaler.state_dict(), "ranks": ranks})
        if self.world_size > 1:
            torch.distributed.barrier()

    def _restore(self, state) -> tuple:
        self.nets.load_state_dict(state["modules"])
        for o, saved, sched in zip(self.optims, state["optimizers"], state["schedulers"]):
            o.optimizer.load_state_dict(saved)
            if o.scheduler is not None:
                o.scheduler.load_state_dict(sched)
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        mine = state["ranks"][self.rank]
        self.method.load_train_state(mine["method"])
        restore_rng(mine["rng"], self.device)
        epoch, batch = state["position"]
        return epoch, batch, state["sums"]
