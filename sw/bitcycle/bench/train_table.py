"""bench train's Markdown table, engine note and plot (from train.json's report dict).

Reports written before the CycleBNN rows existed lack their keys: those cells stay empty and the
"vs W1A1 fixed:8" columns fall back to the trainer's "vs fixed:8" (the same reference for a
binary-forward row).
"""

from __future__ import annotations

import io

from bitcycle.bench.train_rows import ENGINE_NOTE

_COLUMNS = ("| model | row | epochs | train samples | test acc | mean b_f | mean b_g | CycleBNN cr vs FP32 "
            "| CycleBNN-line saving vs FP32 | training BOPs | BOP saving vs FP32 | BOP saving vs W1A1 fixed:8 "
            "| engine bwd cycles vs W1A1 fixed:8 | engine planes (fwd+bwd) vs W1A1 fixed:8 "
            "| host scale mul / bwd MAC | wall s | CPU s |")


def _spec(r: dict) -> str:
    return r.get("spec", r["grad_bits"])


def _pct(r: dict, key: str, fallback: str | None = None) -> str:
    v = r.get(key, r.get(fallback) if fallback else None)
    return "" if v is None else f"{v:.2%}"


def _num(r: dict, key: str, fmt: str) -> str:
    v = r.get(key)
    return "" if v is None else format(v, fmt)


def markdown_table(report: dict) -> str:
    lr = report["lr"]  # one value per model; reports written before --lr-mlp/--lr-cnn hold one number
    lr_text = ", ".join(f"{v} ({k})" for k, v in lr.items()) if isinstance(lr, dict) else str(lr)
    fwd = "" if report.get("forward_fraction") is None else (
        f" fwd: rows cycle the forward W/A precision for the first {report['forward_fraction']:g} of the steps, "
        f"binary afterwards.")
    lines = [f"Fashion-MNIST, {report['train_samples']} train / {report['test_samples']} test samples, batch "
             f"{report['batch_size']}, Adam lr {lr_text} (cosine), seed {report['seed']}, gradient scales per "
             f"{_scale_text(report)}, {report.get('jobs', 1)} run(s) in parallel × {report['threads']} "
             f"torch thread(s).{fwd}",
             "",
             _COLUMNS,
             "|---|---|" + "---:|" * 15]
    for r in report["runs"]:
        mean_bf = r.get("mean_forward_bits", 1.0 if "spec" not in r else None)
        lines.append(f"| {r['model']} | {_spec(r)} | {r['epochs']} | {r.get('train_samples', '')} | {r['test_accuracy']:.2%} | "
                     f"{'' if mean_bf is None else f'{mean_bf:.2f}'} | {r['mean_grad_bits']:.2f} | "
                     f"{_num(r, 'cyclebnn_cost_ratio', '.5f')} | {_pct(r, 'cyclebnn_saving_vs_fp32')} | "
                     f"{r['train_bops']:.3e} | {r['saving_vs_fp32']:.2%} | "
                     f"{_pct(r, 'bops_saving_vs_w1a1_fixed8', 'saving_vs_fixed8')} | "
                     f"{_pct(r, 'engine_backward_saving_vs_w1a1_fixed8', 'engine_backward_saving_vs_fixed8')} | "
                     f"{_pct(r, 'engine_saving_vs_w1a1_fixed8')} | "
                     f"{_host_text(r)} | {r['wall_time_s']:.0f} | {r['cpu_time_s']:.0f} |")
    if report.get("targets"):
        lines += ["", "| model | target | measured | met |", "|---|---|---:|---|"]
        for t in report["targets"]:
            lines.append(f"| {t['model']} | {t['target']} | {t['measured']:.4f} | {'yes' if t['met'] else '**no**'} |")
    lines += _cheapest_lines(report["runs"])
    resumed = " (this session of a resumed benchmark; each run's times add up its sessions)" if report.get("resumed") else ""
    lines += ["", f"Whole benchmark: {report['wall_time_s']:.0f} s wall, {report['cpu_time_s']:.0f} s CPU{resumed}."]
    return "\n".join(lines) + "\n"


def _cheapest_lines(runs: list[dict]) -> list[str]:
    """Per model, the cheapest row by each accounting, then why the engine ranks them as it does."""
    rows = [r for r in runs if "engine_planes" in r]
    if not any(r.get("forward_bits") for r in rows):
        return []
    out = [""]
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        eng = min(mine, key=lambda r: r["engine_planes"])
        cyc = min(mine, key=lambda r: r["cyclebnn_cost_ratio"])
        out.append(f"* {model}: cheapest on BitCycle's engine (fwd+bwd bit-planes): {_spec(eng)} "
                   f"({eng['engine_planes']:.3e}); cheapest by CycleBNN's line: {_spec(cyc)} "
                   f"(cr {cyc['cyclebnn_cost_ratio']:.5f}).")
    return out + ["", ENGINE_NOTE]


def _host_text(row: dict) -> str:
    ratio = row.get("host_scale_muls_per_backward_mac")
    return "" if ratio is None else f"{ratio:.4f}"


def _scale_text(report: dict) -> str:
    scale = report.get("grad_scale", "tensor")
    if scale == "row" and report.get("grad_block"):
        return f"row in blocks of {report['grad_block']}"
    return scale


def plot(results: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        ep = list(range(1, len(r["accuracy_per_epoch"]) + 1))
        ax[0].plot(ep, r["accuracy_per_epoch"], "o-", label=r["run"])
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("test accuracy")
    ax[0].legend(fontsize=7)
    shown = set()
    for r in results:
        spec = _spec(r)
        if spec in shown:
            continue
        shown.add(spec)
        line = ax[1].step(range(len(r["bits_per_step"])), r["bits_per_step"], where="post", label=f"{spec}: grad", lw=0.8)
        if r.get("forward_bits"):  # a CycleBNN row: its forward W/A bits too, dashed
            ax[1].step(range(len(r["forward_bits_per_step"])), r["forward_bits_per_step"], where="post", ls="--",
                       color=line[0].get_color(), label=f"{spec}: fwd W/A", lw=0.8)
    ax[1].set_xlabel(f"step ({results[0]['model']})" if results else "step")
    ax[1].set_ylabel("bits")
    ax[1].set_yscale("log", base=2)
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
