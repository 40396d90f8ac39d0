"""The trainer: cyclic gradient precision for the zoo's binary nets.

Per step t: b = schedule.bits(t) → every binary layer quantises its dy and dW to b bits
(``set_grad_bits``) → forward, cross-entropy, backward → Adam on the latent weights → clip them to
[−1, 1]. After each epoch: test accuracy, an atomic checkpoint (model, optimiser, LR schedule,
stochastic-rounding generators, history), so ``resume=True`` continues to the same final weights
as an uninterrupted run. Ctrl-C or SIGTERM stops the run after the step under way with a
checkpoint of that position inside the epoch (``bitcycle.train.interrupt``), so an interrupt loses
nothing either. Randomness is all seeded: batches by (seed, epoch), dropout by (seed, epoch, rank)
(its generator state travels in a mid-epoch checkpoint), stochastic rounding by per-layer generators
that travel in every checkpoint.

Data-parallel: under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel
(gloo on CPU); ``batch_size`` is the global batch, each rank takes 1/world of it; rank 0 writes.

Outputs in ``out``: checkpoint.pt, model.pt, metrics.json, metrics.csv (one row per step),
metrics.png (loss, accuracy, gradient bits over steps).
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from bitcycle.errors import BitCycleError
from bitcycle.nets import MODELS, clip_latent_weights, get_model, load_model_config
from bitcycle.quant.forward import set_forward_bits
from bitcycle.quant.grad import (DEFAULT_GRAD_BLOCK, GRAD_SCALES, grad_quant_state, load_grad_quant_state, seed_grad_quant,
                                 set_grad_bits, set_grad_scale, set_weight_grad_quant)
from bitcycle.schedule import parse_grad_bits
from bitcycle.train import checkpoint as ckpt
from bitcycle.train.data import Dataset, batches, limit_dataset, load_dataset, steps_per_epoch
from bitcycle.train.interrupt import StopGuard, TrainingInterrupted
from bitcycle.train.ops import layer_ops, layers_table, run_costs


@dataclass
class TrainConfig:
    model: str = "sfc"                 # zoo name or a models/*.toml file
    model_cfg: dict = field(default_factory=dict)
    dataset: str = "digits"
    data_dir: str | None = None
    grad_bits: str = "fp32"
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.01
    seed: int = 0
    train_limit: int | None = None
    test_limit: int | None = None
    augment: bool = True
    quantise_weight_grad: bool = True
    grad_scale: str = "row"            # "tensor" or "row" (bitcycle.quant.grad)
    grad_block: int = DEFAULT_GRAD_BLOCK  # row scales: values per scale along the reduction (0 = whole row)
    memory_efficient: bool = False     # save 1-bit sign(x) for backward (bitcycle.train.memory)
    forward_bits: str | None = None    # CycleBNN's variant: forward W/A precision SPEC (bitcycle.quant.forward)
    forward_fraction: float = 0.5      # ... for this fraction of the steps, binary afterwards

    def check(self) -> None:
        parse_grad_bits(self.grad_bits)
        if self.grad_scale not in GRAD_SCALES:
            raise BitCycleError(f"--grad-scale {self.grad_scale!r}: choose one of {', '.join(GRAD_SCALES)}")
        if isinstance(self.grad_block, bool) or not isinstance(self.grad_block, int) or self.grad_block < 0:
            raise BitCycleError(f"--grad-block {self.grad_block!r}: give an integer >= 0 (0 = one scale per row)")
        if self.forward_bits:
            fwd = parse_grad_bits(self.forward_bits)
            if fwd.b_max > 16:
                raise BitCycleError(f"--forward-bits {self.forward_bits}: forward precision goes up to 16 bits")
            if not 0 < self.forward_fraction <= 1:
                raise BitCycleError(f"--forward-fraction {self.forward_fraction}: give a fraction in (0, 1]")
            if self.memory_efficient:
                raise BitCycleError("--forward-bits and --memory-efficient exclude each other (the 1-bit saved "
                                    "activations need a binary forward pass); drop one")
        if self.epochs < 1:
            raise BitCycleError(f"--epochs {self.epochs}: train for at least 1 epoch")
        if self.batch_size < 2:
            raise BitCycleError(f"--batch-size {self.batch_size}: BatchNorm needs batches of at least 2")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise BitCycleError(f"--lr {self.lr}: give a positive learning rate")


# the options that must match for --resume to continue the same run
_RUN_KEYS = ("dataset", "grad_bits", "epochs", "batch_size", "lr", "seed", "train_limit", "test_limit", "augment",
             "quantise_weight_grad", "grad_scale", "grad_block", "memory_efficient", "forward_bits", "forward_fraction")
_RUN_KEY_BEFORE = {"grad_scale": "tensor", "grad_block": DEFAULT_GRAD_BLOCK}  # the value of a key checkpoints made before it existed had


def resolve_model(cfg: TrainConfig, data: Dataset) -> tuple[str, dict]:
    """Zoo name + options, with the input shape and classes filled in from the data set."""
    name, model_cfg = cfg.model, dict(cfg.model_cfg)
    if name.endswith(".toml") or os.sep in name:
        name, from_file = load_model_config(name)
        model_cfg = {**from_file, **model_cfg}
    if name not in MODELS:
        raise BitCycleError(f"unknown model {name!r}; choose one of {', '.join(MODELS)} or give a models/*.toml file")
    c, h, w = data.sample_shape
    model_cfg.setdefault("num_classes", data.num_classes)
    if name in ("tfc", "sfc", "lfc"):
        model_cfg.setdefault("in_features", c * h * w)
        if model_cfg["in_features"] != c * h * w:
            raise BitCycleError(f"model {name} takes {model_cfg['in_features']} inputs but {data.name} has {c}×{h}×{w}")
    else:
        model_cfg.setdefault("in_channels", c)
        model_cfg.setdefault("input_size", h)
        if (model_cfg["in_channels"], model_cfg["input_size"]) != (c, h) or h != w:
            raise BitCycleError(f"model {name} is for {model_cfg['in_channels']}×{model_cfg['input_size']}² inputs but "
                                f"{data.name} has {c}×{h}×{w}")
    return name, model_cfg


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) in eval mode."""
    was = model.training
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i:i + batch])
            loss += float(F.cross_entropy(out, y[i:i + batch], reduction="sum"))
            correct += int((out.argmax(1) == y[i:i + batch]).sum())
    model.train(was)
    return correct / len(y), loss / len(y)


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          stop_after_epochs: int | None = None, data: Dataset | None = None,
          on_step: Callable[[int], None] | None = None) -> dict:
    """Train; returns the metrics dict (also written to ``out/metrics.json``).

    ``stop_after_epochs`` ends this call after that many epochs (an "interrupted" run, for tests);
    ``data`` passes an already-loaded data set (the benchmark reuses one); ``on_step(step)`` is
    called after every finished step (the benchmark's progress bar over parallel runs).
    """
    from tqdm import tqdm

    cfg.check()
    out = Path(out)
    rank, world = _dist_info()
    if cfg.batch_size % world:
        raise BitCycleError(f"--batch-size {cfg.batch_size} does not split over {world} processes; use a multiple of {world}")
    spec = parse_grad_bits(cfg.grad_bits)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_dir, cfg.train_limit, cfg.test_limit, cfg.augment)
    else:  # a pre-loaded set (the benchmark shares one): apply this run's limits to it
        data = limit_dataset(data, cfg.train_limit, cfg.test_limit, cfg.augment)
    name, model_cfg = resolve_model(cfg, data)
    spe = steps_per_epoch(len(data.train_y), cfg.batch_size)
    if spe < 1:
        raise BitCycleError(f"{len(data.train_y)} training samples give no full batch of {cfg.batch_size}; lower --batch-size")
    total_steps = spe * cfg.epochs
    schedule = spec.schedule(total_steps)
    fwd_steps, fwd_schedule = 0, None
    if cfg.forward_bits:  # CycleBNN's variant: forward W/A precision cycles for the first steps
        fwd_steps = max(1, int(round(total_steps * cfg.forward_fraction)))
        fwd_schedule = parse_grad_bits(cfg.forward_bits).schedule(fwd_steps)

    torch.manual_seed(cfg.seed)
    core = get_model(name, **model_cfg)
    set_weight_grad_quant(core, cfg.quantise_weight_grad)
    set_grad_scale(core, cfg.grad_scale, cfg.grad_block)
    seed_grad_quant(core, cfg.seed * 131 + rank)
    if cfg.memory_efficient:  # same parameters and gradients, ~1 bit per stored activation
        from bitcycle.train.memory import set_memory_efficient

        set_memory_efficient(core)
    opt = torch.optim.Adam(core.parameters(), lr=cfg.lr)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    run_id = {k: getattr(cfg, k) for k in _RUN_KEYS}
    history = {"steps": [], "epochs": []}
    start_epoch, step, wall_before, cpu_before = 0, 0, 0.0, 0.0
    in_epoch = None

    if resume:
        state = ckpt.load_checkpoint(out / ckpt.CHECKPOINT)
        if (state["model"], state["model_cfg"]) != (name, model_cfg):
            raise BitCycleError(f"checkpoint in {out} is from model {state['model']} {state['model_cfg']}, not {name} "
                                f"{model_cfg}; resume with the same --model or use a new --out")
        diff = [k for k in _RUN_KEYS if state["run"].get(k, _RUN_KEY_BEFORE.get(k)) != run_id[k]]
        if diff:
            was = ", ".join(f"{k}={state['run'].get(k, _RUN_KEY_BEFORE.get(k))!r}" for k in diff)
            raise BitCycleError(f"checkpoint in {out} was made with other options ({was}); "
                                f"resume with the same options or use a new --out")
        if state["world"] != world:
            raise BitCycleError(f"checkpoint in {out} was made with {state['world']} processes, not {world}; resume with the same count")
        core.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        lr_sched.load_state_dict(state["lr_schedule"])
        load_grad_quant_state(core, state["grad_quant"][rank])
        history, start_epoch, step = state["history"], state["epoch"], state["step"]
        wall_before, cpu_before = state["wall_s"], state["cpu_s"]
        in_epoch = state.get("in_epoch")  # stopped between two steps of epoch `start_epoch`
    elif (out / ckpt.CHECKPOINT).exists():
        raise BitCycleError(f"{out} already holds a run (checkpoint.pt); pass --resume to continue it or use a new --out")
    _barrier(world)  # every rank has checked before rank 0 writes anything

    model = core
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(core)
    layers = layer_ops(core, data.sample_shape)
    t_wall, t_cpu = time.perf_counter(), time.process_time()

    def save_checkpoint(epoch_next: int, position: dict | None = None) -> None:
        """Everything a resumed run needs; ``position``: where inside epoch ``epoch_next`` it stopped."""
        gq_states = _gather(grad_quant_state(core), world)
        if rank == 0:
            ckpt.atomic_torch_save(out / ckpt.CHECKPOINT, {
                "model": name, "model_cfg": model_cfg, "run": run_id, "world": world,
                "state_dict": core.state_dict(), "optimizer": opt.state_dict(), "lr_schedule": lr_sched.state_dict(),
                "grad_quant": gq_states, "history": history, "epoch": epoch_next, "step": step, "in_epoch": position,
                "wall_s": wall_before + time.perf_counter() - t_wall, "cpu_s": cpu_before + time.process_time() - t_cpu})

    epochs_run = 0
    with StopGuard(enabled=world == 1) as stop:
        for epoch in range(start_epoch, cfg.epochs):
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 101 + rank)  # dropout: resumable per epoch
            skip, ep_loss, ep_correct, ep_n = 0, 0.0, 0, 0
            if in_epoch is not None:  # resumed between two steps: the same batches and dropout draws follow
                skip, ep_loss, ep_correct, ep_n = (in_epoch[k] for k in ("steps_done", "loss_sum", "correct", "samples"))
                torch.set_rng_state(in_epoch["torch_rng"])
                in_epoch = None
            model.train()
            bar = tqdm(total=spe, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False,
                       disable=not progress or rank != 0, dynamic_ncols=True)
            for i, (bx, by) in enumerate(batches(data.train_x, data.train_y, cfg.batch_size, epoch, cfg.seed, data.augment,
                                                 rank, world)):
                if i < skip:  # drawn and dropped, so that augmentation's generator is where it was
                    continue
                bits = schedule.bits(step)
                set_grad_bits(core, bits)
                fbits = fwd_schedule.bits(step) if fwd_schedule is not None and step < fwd_steps else 1
                set_forward_bits(core, fbits)
                logits = model(bx)
                loss = F.cross_entropy(logits, by)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if not torch.isfinite(loss):
                    raise BitCycleError(f"loss became {float(loss)} at step {step}; lower --lr")
                opt.step()
                lr_sched.step()
                clip_latent_weights(core)
                correct = int((logits.argmax(1) == by).sum())
                loss = float(loss.detach())
                ep_loss += loss * len(by)
                ep_correct += correct
                ep_n += len(by)
                history["steps"].append({"step": step, "epoch": epoch, "grad_bits": bits, "forward_bits": fbits, "loss": loss,
                                         "train_acc": correct / len(by), "lr": opt.param_groups[0]["lr"]})
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", bits=bits)
                if on_step is not None:
                    on_step(step)
                if stop.requested and i + 1 < spe:
                    bar.close()
                    save_checkpoint(epoch, {"steps_done": i + 1, "loss_sum": ep_loss, "correct": ep_correct,
                                            "samples": ep_n, "torch_rng": torch.get_rng_state()})
                    raise TrainingInterrupted(f"{stop.requested} at step {step} of {total_steps}; checkpoint saved in "
                                              f"{out}, continue with the same command and --resume")
            bar.close()
            test_acc, test_loss = evaluate(core, data.test_x, data.test_y) if rank == 0 else (float("nan"), float("nan"))
            history["epochs"].append({"epoch": epoch, "step": step, "train_loss": ep_loss / ep_n,
                                      "train_acc": ep_correct / ep_n, "test_acc": test_acc, "test_loss": test_loss})
            if progress and rank == 0:
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: train loss {ep_loss / ep_n:.4f} acc {ep_correct / ep_n:.4f}, "
                           f"test acc {test_acc:.4f}")
            save_checkpoint(epoch + 1)
            _barrier(world)
            epochs_run += 1
            if stop.requested and epoch + 1 < cfg.epochs:
                raise TrainingInterrupted(f"{stop.requested} after epoch {epoch + 1} of {cfg.epochs}; checkpoint saved in "
                                          f"{out}, continue with the same command and --resume")
            if stop_after_epochs is not None and epochs_run >= stop_after_epochs and epoch + 1 < cfg.epochs:
                return {"interrupted_after_epoch": epoch + 1}

    wall = wall_before + time.perf_counter() - t_wall
    cpu = cpu_before + time.process_time() - t_cpu
    set_forward_bits(core, 1)
    bits_per_step = [s["grad_bits"] for s in history["steps"]]
    fwd_per_step = [s.get("forward_bits", 1) for s in history["steps"]]
    last = history["epochs"][-1]
    metrics = {
        "model": name, "model_cfg": model_cfg, **{k: v for k, v in asdict(cfg).items() if k not in ("model", "model_cfg")},
        "grad_bits": str(spec), "schedule": repr(schedule), "world_size": world, "threads": torch.get_num_threads(),
        "steps": step, "steps_per_epoch": spe,
        "test_accuracy": last["test_acc"], "test_loss": last["test_loss"],
        "best_test_accuracy": max(e["test_acc"] for e in history["epochs"]),
        "train_loss": last["train_loss"], "train_accuracy": last["train_acc"],
        "epochs_detail": history["epochs"],
        "bits_per_step": bits_per_step,
        **({"forward_bits_per_step": fwd_per_step} if cfg.forward_bits else {}),
        **run_costs(layers, bits_per_step, cfg.batch_size, fwd_per_step,
                    scale_block=cfg.grad_block if cfg.grad_scale == "row" else 0),
        "layers": layers_table(layers),
        "wall_time_s": wall, "cpu_time_s": cpu,
    }
    if rank == 0:
        ckpt.atomic_torch_save(out / ckpt.MODEL, {"model": name, "model_cfg": model_cfg, "state_dict": core.state_dict(),
                                                  "test_accuracy": metrics["test_accuracy"], "grad_bits": str(spec)})
        write_metrics(out, metrics, history)
    _barrier(world)
    return metrics


def _gather(obj, world: int):
    if world == 1:
        return [obj]
    import torch.distributed as dist

    got = [None] * world
    dist.all_gather_object(got, obj)
    return got


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def write_metrics(out: Path, metrics: dict, history: dict) -> None:
    ckpt.atomic_write_json(out / "metrics.json", metrics)
    test_at = {e["step"] - 1: e["test_acc"] for e in history["epochs"]}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", "epoch", "grad_bits", "forward_bits", "loss", "train_acc", "lr", "test_acc"])
    for s in history["steps"]:
        w.writerow([s["step"], s["epoch"], s["grad_bits"], s.get("forward_bits", 1), f"{s['loss']:.6g}", f"{s['train_acc']:.6g}",
                    f"{s['lr']:.6g}", f"{test_at[s['step']]:.6g}" if s["step"] in test_at else ""])
    ckpt.atomic_write_text(out / "metrics.csv", buf.getvalue())
    ckpt.atomic_write_bytes(out / "metrics.png", plot_png(history, f"{metrics['model']} on {metrics['dataset']}, "
                                                                   f"grad bits {metrics['grad_bits']}"))


def plot_png(history: dict, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s["step"] for s in history["steps"]]
    fig, ax = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    ax[0].plot(steps, [s["loss"] for s in history["steps"]], lw=0.6, label="train loss (batch)")
    ax[0].plot([e["step"] - 1 for e in history["epochs"]], [e["test_loss"] for e in history["epochs"]], "o-", label="test loss")
    ax[0].set_ylabel("loss")
    ax[0].legend()
    ax[1].plot(steps, _smooth([s["train_acc"] for s in history["steps"]]), lw=0.8, label="train acc (smoothed)")
    ax[1].plot([e["step"] - 1 for e in history["epochs"]], [e["test_acc"] for e in history["epochs"]], "o-", label="test acc")
    ax[1].set_ylabel("accuracy")
    ax[1].legend()
    ax[2].step(steps, [s["grad_bits"] for s in history["steps"]], where="post", lw=0.8)
    ax[2].set_ylabel("gradient bits")
    ax[2].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _smooth(v: list[float], k: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, x in enumerate(v):
        acc += x
        if i >= k:
            acc -= v[i - k]
        out.append(acc / min(i + 1, k))
    return out
