"""Folding (PE/SIMD) from a throughput target or a LUT budget, legal values only, and the resource
report against the device.

Legal values: PE divides MH (output channels), SIMD divides MW (the reduction) — FINN's rule,
for BitSerialMVAU layers too (hw/rtl's bitcycle_mvau takes any such PE and SIMD). A sliding-window
generator's
SIMD follows the SIMD of the MVAU it feeds. Cost of a choice = FINN's per-layer LUT estimate after
``SpecializeLayers`` (for BitSerialMVAU: the model fitted to Yosys, ``lut_model``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qonnx.transformation.base import Transformation

from bitcycle.errors import BitCycleError

# device capacities (LUT, BRAM36, DSP) by part-name prefix
DEVICES = {
    "xc7z020": {"board": "PYNQ-Z2", "LUT": 53_200, "BRAM36": 140, "DSP": 220},
    "xczu3eg": {"board": "Ultra96-V2", "LUT": 70_560, "BRAM36": 216, "DSP": 360},
    "xczu7ev": {"board": "ZCU104", "LUT": 230_400, "BRAM36": 312, "DSP": 1728},
}
PARTS = {"pynq-z2": "xc7z020clg400-1", "ultra96": "xczu3eg-sbva484-1-i", "zcu104": "xczu7ev-ffvc1156-2-e"}


def device_for(part: str) -> dict:
    for prefix, dev in DEVICES.items():
        if part.lower().startswith(prefix):
            return dict(dev, part=part)
    raise BitCycleError(f"unknown FPGA part {part!r}; supported: {', '.join(PARTS.values())} "
                        f"(or a board name: {', '.join(PARTS)})")


def resolve_part(part_or_board: str) -> str:
    part = PARTS.get(part_or_board.lower(), part_or_board)
    device_for(part)
    return part


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _knobs(node, inst):
    """[(attribute, legal values)] of one node; empty when it has no folding."""
    op = node.op_type
    if op.startswith("MVAU") or op.startswith("BitSerialMVAU"):
        return [("PE", divisors(inst.get_nodeattr("MH"))), ("SIMD", divisors(inst.get_nodeattr("MW")))]
    if op.startswith("Thresholding"):
        return [("PE", divisors(inst.get_nodeattr("NumChannels")))]
    if op.startswith(("Pool", "BitCycleMaxPool")):
        return [("PE", divisors(inst.get_nodeattr("Channels")))]
    return []


def _set(node, inst, values: dict):
    for k, v in values.items():
        inst.set_nodeattr(k, int(v))


def lut_lane_steps(pe: int) -> list[int]:
    """The counts of a BitSerialMVAU's PE lanes with weights in LUT logic the folding tries: each
    count up to 16 lanes, sixteenths of PE beyond."""
    if pe <= 16:
        return list(range(pe + 1))
    return sorted({round(pe * j / 16) for j in range(17)})


def _follow_window_generators(model):
    """A ConvolutionInputGenerator's SIMD = the largest divisor of its channels ≤ its consumer's SIMD
    (an MVAU's SIMD, a pool's PE)."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        if not node.op_type.startswith("ConvolutionInputGenerator"):
            continue
        inst = getCustomOp(node)
        consumer = model.find_consumer(node.output[0])
        want = 1
        if consumer is not None and "MVAU" in consumer.op_type:
            want = getCustomOp(consumer).get_nodeattr("SIMD")
        elif consumer is not None and consumer.op_type.startswith(("Pool", "BitCycleMaxPool")):  # depthwise window: SIMD = the pool's PE
            want = getCustomOp(consumer).get_nodeattr("PE")
        ch = inst.get_nodeattr("IFMChannels")
        inst.set_nodeattr("SIMD", max(d for d in divisors(ch) if d <= max(1, want)))


@dataclass
class Choice:
    values: dict
    cycles: int
    lut: int
    bram18: int = 0
    dsp: int = 0


def _window_in_front(model, node, inst):
    """A pool's depthwise window generator (its SIMD follows the pool's PE), or None."""
    if model is None or not node.op_type.startswith(("Pool", "BitCycleMaxPool")):
        return None
    from qonnx.custom_op.registry import getCustomOp

    prod = model.find_producer(node.input[0])
    return getCustomOp(prod) if prod is not None and prod.op_type.startswith("ConvolutionInputGenerator") else None


def _options(node, inst, fpgapart, model=None):
    """Every legal folding of a node with its cycles, LUTs, BRAM18s and DSPs (Pareto-pruned: no other
    choice is as good in all four; increasing LUT). A pool's cycles include its
    window generator's at the SIMD the pool's PE gives it."""
    knobs = _knobs(node, inst)
    if not knobs:
        return None
    old = {k: inst.get_nodeattr(k) for k, _ in knobs}
    swg = _window_in_front(model, node, inst)
    swg_simd = swg.get_nodeattr("SIMD") if swg is not None else None
    combos = [{}]
    for name, vals in knobs:
        combos = [dict(c, **{name: v}) for c in combos for v in vals]
    lanes = node.op_type.startswith("BitSerialMVAU")  # weights of some lanes in LUT logic: another knob
    if lanes:
        old["wrom_lut_pe"] = inst.get_nodeattr("wrom_lut_pe")
        combos = [dict(c, wrom_lut_pe=0) for c in combos]

    def measure(combo):
        _set(node, inst, combo)
        cycles = int(inst.get_exp_cycles())
        if swg is not None:
            ch = swg.get_nodeattr("IFMChannels")
            swg.set_nodeattr("SIMD", max(d for d in divisors(ch) if d <= inst.get_nodeattr("PE")))
            cycles = max(cycles, int(swg.get_exp_cycles()))
        return Choice(combo, cycles, int(inst.lut_estimation(fpgapart)), int(inst.bram_estimation(fpgapart)),
                      int(inst.dsp_estimation(fpgapart)))

    out = _pareto([measure(c) for c in combos])
    if lanes:  # the lane split of the foldings that are Pareto-optimal with all weights in block RAM
        out = _pareto(out + [measure(dict(c.values, wrom_lut_pe=k)) for c in out if c.bram18
                             for k in lut_lane_steps(c.values["PE"])[1:]])
    _set(node, inst, old)
    if swg is not None:
        swg.set_nodeattr("SIMD", swg_simd)
    return sorted(out, key=lambda c: (c.lut, c.cycles, c.bram18))


def _pareto(choices: list) -> list:
    """The choices no other is as good as in cycles, LUTs, BRAM18s and DSPs."""
    def cost(c):
        return (c.cycles, c.lut, c.bram18, c.dsp)

    return [c for c in choices if not any(cost(o) != cost(c) and all(a <= b for a, b in zip(cost(o), cost(c)))
                                          for o in choices)]


def _cheapest_meeting(options, target_cycles):
    """The choice meeting the cycle target with the fewest LUTs (then BRAM18s, DSPs)."""
    meeting = [c for c in options if c.cycles <= target_cycles]
    if not meeting:
        return None
    return min(meeting, key=lambda c: (c.lut, c.bram18, c.dsp))


_SCARCE = ("bram18", "dsp")


def _trade_luts_for(scarce: str, picks: list, options: list, target_cycles: int, limit: int) -> list:
    """Bring the picks' total ``scarce`` ("bram18" or "dsp") within ``limit``: repeatedly move the
    layer whose next choice (still meeting the cycle target) saves that resource for the fewest extra
    LUTs per unit saved, until it fits or nothing saves more. Returns the new picks."""
    picks = list(picks)
    while sum(getattr(p, scarce) for p in picks) > limit:
        best = None
        for i, (pick, opts) in enumerate(zip(picks, options)):
            for c in opts:
                saved = getattr(pick, scarce) - getattr(c, scarce)
                if c.cycles > target_cycles or saved <= 0 or any(getattr(c, r) > getattr(pick, r) for r in _SCARCE):
                    continue  # (nor takes more of the other scarce resource)
                key = ((c.lut - pick.lut) / saved, c.lut)
                if best is None or key < best[0]:
                    best = (key, i, c)
        if best is None:
            break
        picks[best[1]] = best[2]
    return picks


class FoldForTarget(Transformation):
    """Set PE/SIMD of every layer: for ``target_fps`` at ``clock_mhz`` the cheapest legal folding
    meeting the cycle budget per image; for ``lut_budget`` the fastest pipeline that fits it."""

    def __init__(self, fpgapart: str, target_fps: float | None = None, lut_budget: int | None = None,
                 clock_mhz: float = 100.0):
        super().__init__()
        if (target_fps is None) == (lut_budget is None):
            raise BitCycleError("give exactly one of --target-fps and --lut-budget")
        if target_fps is not None and target_fps <= 0:
            raise BitCycleError(f"--target-fps must be > 0, got {target_fps}")
        if lut_budget is not None and lut_budget <= 0:
            raise BitCycleError(f"--lut-budget must be > 0, got {lut_budget}")
        self.fpgapart, self.target_fps, self.lut_budget, self.clock_mhz = fpgapart, target_fps, lut_budget, clock_mhz
        self.report: dict = {}

    def apply(self, model):
        from qonnx.custom_op.registry import getCustomOp

        from bitcycle.compile.passes import graph_bytes

        before = graph_bytes(model)
        layers = []
        for node in model.graph.node:
            inst = getCustomOp(node) if node.domain.startswith("finn.custom_op.fpgadataflow") else None
            opts = _options(node, inst, self.fpgapart, model) if inst is not None else None
            if opts:
                layers.append((node, inst, opts))
        if not layers:
            raise BitCycleError("no foldable layer in the graph: run the flow up to SpecializeLayers first")
        clock = self.clock_mhz * 1e6
        if self.target_fps is not None:
            target = int(clock / self.target_fps)
            for node, inst, opts in layers:
                c = _cheapest_meeting(opts, target)
                if c is None:
                    fastest = min(opts, key=lambda c: c.cycles)
                    raise BitCycleError(
                        f"folding infeasible: layer {node.name} needs {fastest.cycles} cycles/image even at "
                        f"{fastest.values} (fully parallel), more than {target} for {self.target_fps:g} images/s at "
                        f"{self.clock_mhz:g} MHz; lower --target-fps to ≤ {clock / fastest.cycles:.0f}")
                _set(node, inst, c.values)
        else:
            # what the foldable layers may use: the budget (LUT) and the device (BRAM, DSP), less what the
            # other nodes (sliding windows, converters) need as they stand
            others = [getCustomOp(n) for n in model.graph.node if n.domain.startswith("finn.custom_op.fpgadataflow")
                      and all(n is not l[0] for l in layers)]
            lut_left = self.lut_budget - sum(int(o.lut_estimation(self.fpgapart)) for o in others)
            dev = device_for(self.fpgapart)
            bram18_left = 2 * dev["BRAM36"] - sum(int(o.bram_estimation(self.fpgapart)) for o in others)
            dsp_left = dev["DSP"] - sum(int(o.dsp_estimation(self.fpgapart)) for o in others)

            def fits(picks):
                return (sum(p.lut for p in picks) <= lut_left and sum(p.bram18 for p in picks) <= bram18_left
                        and sum(p.dsp for p in picks) <= dsp_left)

            candidates = sorted({c.cycles for _, _, opts in layers for c in opts}, reverse=True)
            best = None
            for target in candidates:  # decreasing cycles = increasing throughput
                picks = [_cheapest_meeting(opts, target) for _, _, opts in layers]
                if any(p is None for p in picks):
                    break
                # trade LUTs for block RAM or DSPs where they run out, layer by layer
                picks = _trade_luts_for("bram18", picks, [o for _, _, o in layers], target, bram18_left)
                picks = _trade_luts_for("dsp", picks, [o for _, _, o in layers], target, dsp_left)
                if not fits(picks):
                    break
                best = picks
            if best is None:
                least = sum(opts[0].lut for _, _, opts in layers)
                least_bram = sum(min(c.bram18 for c in opts) for _, _, opts in layers)
                least_dsp = sum(min(c.dsp for c in opts) for _, _, opts in layers)
                raise BitCycleError(f"folding infeasible: even fully folded the layers need ~{least} LUTs, "
                                    f"{least_bram} BRAM18s and {least_dsp} DSPs, over the {lut_left} LUTs (--lut-budget "
                                    f"{self.lut_budget} less the other nodes'), {bram18_left} BRAM18s and {dsp_left} DSPs "
                                    "left; raise the budget or narrow the model")
            for (node, inst, _), pick in zip(layers, best):
                _set(node, inst, pick.values)
        _follow_window_generators(model)
        from bitcycle.compile.bitserial_rtl import check_buildable

        for node, inst, _ in layers:
            if node.op_type.startswith("BitSerialMVAU"):
                check_buildable(inst)
        return model, graph_bytes(model) != before  # the same folding again: unchanged


def resource_report(model, fpgapart: str, clock_mhz: float = 100.0) -> dict:
    """FINN's per-layer estimates (LUT, BRAM18 → BRAM36, DSP, cycles) and totals vs the device."""
    from qonnx.custom_op.registry import getCustomOp

    dev = device_for(fpgapart)
    layers = []
    for node in model.graph.node:
        if not node.domain.startswith("finn.custom_op.fpgadataflow"):
            continue
        inst = getCustomOp(node)
        est = inst.node_res_estimation(fpgapart)
        entry = {"name": node.name, "op_type": node.op_type,
                 "LUT": int(est.get("LUT", 0)), "BRAM_18K": int(est.get("BRAM_18K", 0)),
                 "DSP": int(est.get("DSP", 0)), "cycles": int(inst.get_exp_cycles())}
        for k in ("PE", "SIMD", "MW", "MH", "bits", "bits_min", "bits_max", "acc_bits"):
            try:
                entry[k] = int(inst.get_nodeattr(k))
            except Exception:  # attribute not defined for this op
                pass
        layers.append(entry)
    total_lut = sum(l["LUT"] for l in layers)
    total_bram36 = math.ceil(sum(l["BRAM_18K"] for l in layers) / 2)
    total_dsp = sum(l["DSP"] for l in layers)
    slowest = max(layers, key=lambda l: l["cycles"])
    fits = total_lut <= dev["LUT"] and total_bram36 <= dev["BRAM36"] and total_dsp <= dev["DSP"]
    return {
        "part": fpgapart, "board": dev["board"], "clock_mhz": clock_mhz,
        "capacity": {"LUT": dev["LUT"], "BRAM36": dev["BRAM36"], "DSP": dev["DSP"]},
        "total": {"LUT": total_lut, "BRAM36": total_bram36, "DSP": total_dsp},
        "utilisation": {"LUT": total_lut / dev["LUT"], "BRAM36": total_bram36 / dev["BRAM36"],
                        "DSP": total_dsp / dev["DSP"]},
        "fits": fits,
        "bottleneck": slowest["name"], "cycles_per_image": slowest["cycles"],
        "images_per_s": clock_mhz * 1e6 / max(1, slowest["cycles"]),
        "estimator": "FINN node_res_estimation (analytical) after SpecializeLayers; BitSerialMVAU: "
                     "model fitted to Yosys synth_xilinx of the generated layer (engine included)",
        "layers": layers,
    }


def resource_table(report: dict) -> str:
    """Markdown table of a resource report."""
    rows = ["| layer | op | PE | SIMD | bits | cycles | LUT | BRAM18 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for l in report["layers"]:
        rows.append(f"| {l['name']} | {l['op_type']} | {l.get('PE', '')} | {l.get('SIMD', '')} | {l.get('bits', '')} "
                    f"| {l['cycles']} | {l['LUT']} | {l['BRAM_18K']} |")
    t, c = report["total"], report["capacity"]
    rows.append(f"| **total** | {report['part']} | | | | {report['cycles_per_image']} | "
                f"{t['LUT']} / {c['LUT']} | {t['BRAM36']} / {c['BRAM36']} BRAM36 |")
    return "\n".join(rows) + f"\n\nfits: {report['fits']}; {report['images_per_s']:.0f} images/s at {report['clock_mhz']:g} MHz\n"
