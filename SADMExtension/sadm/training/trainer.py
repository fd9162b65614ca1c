"""The Alg. 1 training run: the loop (AdamW with warm-up + cosine LR, gradient clipping and
accumulation, EMA weights, bf16 autocast on CUDA) and periodic validation. Its other jobs have their
own modules: `schedule` (learning rate, micro-batches), `checkpoints` (atomic checkpoints, exact
resume) and `distributed` (DistributedDataParallel under torchrun; rank 0 writes logs and checkpoints)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sadm.config import ModelConfig, TrainConfig
from sadm.data.normalize import renormalize_to_observed
from sadm.devices import autocast, resolve_device
from sadm.errors import CheckpointError
from sadm.generation.autoregressive import autoregressive_generate
from sadm.generation.request import SamplingOptions
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import initial_weights, save_model
from sadm.training import distributed
from sadm.training.batches import make_batch
from sadm.training.checkpoints import (
    checkpoint_folder,
    latest_checkpoint,
    optimizer_state,
    prune_checkpoints,
    read_checkpoint,
    truncate_log,
    write_checkpoint,
)
from sadm.training.dataset import collate_sequences
from sadm.training.distributed import Distributed
from sadm.training.ema import EMA
from sadm.training.schedule import BatchSchedule, learning_rate


class Trainer:
    """One training run writing into `out`: log.jsonl, checkpoints/step-XXXXXXXX/, model/ (EMA)."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        train_set: Sequence[dict],
        val_set: Sequence[dict],
        out: Path | str,
        device: str | torch.device = "auto",
        provenance: dict[str, Any] | None = None,
        show_progress: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        self.world = Distributed.from_environment(self.device)
        if self.device.type == "cuda" and self.world.world_size > 1:
            self.device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(self.device)
        self.model_config = model_config
        self.config = train_config
        self.train_set, self.val_set = train_set, val_set
        self.out = Path(out)
        self.provenance = dict(provenance or {})
        self.show_progress = show_progress and self.world.is_main

        torch.manual_seed(train_config.seed)  # identical initial weights on every rank
        self.model = SADM(model_config).to(self.device)
        if train_config.init_from:
            self.model.load_state_dict(initial_weights(train_config.init_from, model_config))
        self.ema = EMA(self.model, train_config.ema_decay)
        self.ema_model = SADM(model_config).to(self.device).eval()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay
        )
        self.parallel_model = self.model
        if self.world.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.parallel_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.generator = torch.Generator().manual_seed(train_config.seed * 1000 + self.world.rank)
        torch.manual_seed(train_config.seed * 1000 + self.world.rank)
        self.schedule = BatchSchedule(len(train_set), train_config, self.world)
        self.step = 0
        self.wall_seconds = 0.0  # training time over all sessions of this run (resumes included)

    # --- the loop ---------------------------------------------------------------------------
    def run(self, until: int | None = None) -> dict[str, float]:
        """Train to `config.steps` (or stop after step `until`, e.g. to test resume)."""
        c = self.config
        last = c.steps if until is None else min(until, c.steps)
        if self.world.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=c.steps, initial=self.step, desc="sadm train", disable=not self.show_progress, dynamic_ncols=True
        )
        started, last_log_step, summary = time.perf_counter(), self.step, {}
        while self.step < last:
            tick = time.perf_counter()
            loss, grad_norm = self._optimisation_step()
            self.wall_seconds += time.perf_counter() - tick
            self.step += 1
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == last:
                elapsed = time.perf_counter() - started
                rate = (self.step - last_log_step) / max(elapsed, 1e-9)
                started, last_log_step = time.perf_counter(), self.step
                summary = {
                    "step": self.step,
                    "loss": loss,
                    "lr": learning_rate(self.step - 1, c),
                    "grad_norm": grad_norm,
                    "it_per_s": rate,
                }
                bar.set_postfix(loss=f"{loss:.4f}", it_s=f"{rate:.2f}")
                self._log(summary)
            if self.step % c.validate_every == 0 or self.step == c.steps:
                summary.update(self.validate())
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                self.save_checkpoint()
        bar.close()
        if self.step == c.steps and self.world.is_main:
            self.export_model(self.out / "model")
        return summary

    def _optimisation_step(self) -> tuple[float, float]:
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, c)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(c.grad_accumulation):
            items = [self.train_set[i] for i in self.schedule.indices(self.step, micro)]
            batch = collate_sequences(items, self.model_config.max_frames)
            example = self._example(batch, self.generator)
            sync = micro == c.grad_accumulation - 1 or self.world.world_size == 1
            context = self.parallel_model.no_sync() if not sync else contextlib.nullcontext()
            with context, autocast(self.device, c.bf16):
                loss = self.parallel_model(example, self.generator) / c.grad_accumulation
            with context:
                loss.backward()
            total += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm))
        self.optimizer.step()
        self.ema.update(self.model)
        if self.world.world_size > 1:
            loss_tensor = torch.tensor([total], device=self.device)
            torch.distributed.all_reduce(loss_tensor)
            total = float(loss_tensor) / self.world.world_size
        return total, grad_norm

    def _example(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Alg. 1 on a collated batch with this run's context and sampling settings (training and
        validation draw from the same distribution)."""
        c = self.config
        return make_batch(
            batch["frames"].to(self.device),
            lengths=batch["lengths"].tolist(),
            times=self._positions(batch["times"]),
            generator=generator,
            context=self.model_config.attention.context,
            truncate_probability=c.truncate_probability,
            missing_rate=c.missing_rate,
            previous_observed_probability=c.previous_observed_probability,
            anchor_target_probability=c.anchor_target_probability,
            frame_ranges=batch["frame_ranges"] if c.normalize_by_observed else None,
        )

    def _positions(self, times: torch.Tensor) -> torch.Tensor:
        """What Aθ embeds: the data's times for a continuous-time model, else frame indices 0..L−1
        (a data set's ages must not reach an index embedding)."""
        if self.model_config.attention.time_embedding == "continuous":
            return times.to(self.device)
        return torch.arange(times.shape[-1], dtype=torch.float32, device=self.device).expand(times.shape)

    # --- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Held-out loss of the EMA weights (fixed draws, comparable across steps) and SSIM/PSNR of
        the last frame of a few held-out sequences generated from all frames before it."""
        if not self.world.is_main or len(self.val_set) == 0:
            return {}
        from sadm.evaluation.metrics import psnr, ssim

        self.ema.copy_to(self.ema_model)
        generator = torch.Generator().manual_seed(12345)
        losses = []
        for index in range(len(self.val_set)):
            batch = collate_sequences([self.val_set[index]], self.model_config.max_frames)
            example = self._example(batch, generator)
            with autocast(self.device, self.config.bf16):
                losses.append(float(self.ema_model.loss(example, generator)))
        scores = {"ssim": [], "psnr": []}
        for index in range(min(self.config.val_generate, len(self.val_set))):
            item = self.val_set[index]
            length = min(item["length"], self.model_config.max_frames)
            frames = item["frames"][:length]
            if self.config.normalize_by_observed:  # the window generation would take from these roles
                frames = renormalize_to_observed(frames, item["frame_ranges"][:length], range(length - 1))
            roles = ["observed"] * (length - 1) + ["future"]
            filled = autoregressive_generate(
                self.ema_model,
                frames[None].to(self.device),
                roles,
                self._positions(item["times"][:length]),
                SamplingOptions("ddim", self.config.val_sampler_steps),
                torch.Generator().manual_seed(index),
            )
            truth, generated = frames[-1].numpy(), filled[0, -1].float().cpu().numpy()
            scores["ssim"].append(ssim(truth, generated))
            scores["psnr"].append(psnr(truth, generated))
        result = {"val_loss": float(np.mean(losses))}
        result.update({f"val_{k}": float(np.mean(v)) for k, v in scores.items() if v})
        self._log({"step": self.step, **result})
        return result

    # --- checkpoints --------------------------------------------------------------------------
    def _rng_states(self) -> dict[str, torch.Tensor]:
        """This process's generator and torch RNG states, gathered from every rank onto rank 0."""
        local = {"generator": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            local["cuda"] = torch.cuda.get_rng_state(self.device)
        return distributed.gather_states(local, self.world, self.device)

    def save_checkpoint(self) -> Path | None:
        rng = self._rng_states()  # every rank takes part in the gather
        if not self.world.is_main:
            return None
        self.ema.copy_to(self.ema_model)
        state = {
            "step": self.step,
            "ema_updates": self.ema.updates,
            "wall_seconds": self.wall_seconds,
            "world_size": self.world.world_size,
            "training": asdict(self.config),
        }
        folder = checkpoint_folder(self.out, self.step)
        write_checkpoint(folder, self._stamped(self.ema_model), self.model, self.optimizer, rng, state)
        prune_checkpoints(self.out, self.config.keep_last, self.config.keep_every)
        return folder

    def resume(self, folder: Path | str | None = None) -> int:
        """Continue from a checkpoint folder (default: the latest under out/checkpoints)."""
        folder = Path(folder) if folder is not None else latest_checkpoint(self.out)
        if folder is None:
            raise CheckpointError(f"no checkpoint to resume under {self.out / 'checkpoints'}")
        state, tensors, ema_weights = read_checkpoint(folder, self.model_config, self.world.world_size)
        self.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        self.ema.load_state_dict(ema_weights, state["ema_updates"])
        self.optimizer.load_state_dict(optimizer_state(tensors, state, self.device))
        rank = self.world.rank
        self.generator.set_state(tensors[f"rng.generator.rank{rank}"])
        torch.set_rng_state(tensors[f"rng.torch.rank{rank}"])
        if self.device.type == "cuda" and f"rng.cuda.rank{rank}" in tensors:
            torch.cuda.set_rng_state(tensors[f"rng.cuda.rank{rank}"], self.device)
        self.step = int(state["step"])
        self.wall_seconds = float(state.get("wall_seconds", 0.0))
        if self.world.is_main:
            truncate_log(self.out / "log.jsonl", self.step)
        return self.step

    def export_model(self, folder: Path | str) -> Path:
        """The deliverable: the EMA weights as a model folder."""
        self.ema.copy_to(self.ema_model)
        return save_model(folder, self._stamped(self.ema_model))

    def _stamped(self, model: SADM) -> SADM:
        provenance = {
            **self.provenance,
            "steps": self.step,
            "wall_seconds": round(self.wall_seconds, 1),
            "world_size": self.world.world_size,
            "device": str(self.device),
            # the settings as run; init_from as the provenance names it (portable, not this machine's path)
            "training": {**asdict(self.config), "init_from": self.provenance.get("init_from", self.config.init_from)},
        }
        model.config = replace(model.config, provenance=provenance)
        return model

    def finish(self) -> None:
        """End a run cleanly: under DDP, log whether every rank holds the same weights, then tear the
        process group down once no rank is still inside a collective. A single process does nothing."""
        if self.world.world_size == 1:
            return
        checksums = distributed.weight_checksums(self.model, self.world)
        self._log(
            {"step": self.step, "rank_weight_checksums": checksums, "ddp_weights_identical": len(set(checksums)) == 1}
        )
        distributed.shut_down()

    def weights_checksum(self) -> float:
        """A cheap fingerprint of the live weights, to check that all ranks agree."""
        return distributed.weights_checksum(self.model)

    def _log(self, record: dict[str, Any]) -> None:
        if not self.world.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
