"""``CompileConfig``: everything one ``bitcycle compile`` run was asked to do, typed and documented,
in the shape of FINN's ``DataflowBuildConfig`` (``steps``, ``start_step`` / ``stop_step``).

The compile writes it to ``build/<model>/compile_config.json``; ``bitcycle compile --config FILE``
runs it again (command-line flags given beside ``--config`` override its fields). The flow's steps
read only the flow fields (part … stop_step); the source and data fields say where the model and
the check images come from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bitcycle.errors import BitCycleError

SCHEMA = "bitcycle.compile_config/1"
SOURCES = ("checkpoint", "model", "driver_json", "onnx")
INPUT_QUANT = ("host", "fabric")


def _default_steps() -> list[str]:
    from bitcycle.compile.steps import STEP_NAMES

    return list(STEP_NAMES)


@dataclass
class CompileConfig:
    # -- source: exactly one of checkpoint / model / driver_json / onnx
    checkpoint: str | None = None   # `bitcycle train` run directory, or its model.pt / checkpoint.pt
    model: str | None = None        # zoo name (tfc, sfc, lfc, cnv) or models/NAME.toml, untrained weights
    driver_json: str | None = None  # driver.json of a model trained through the driver (`bitcycle run`)
    onnx: str | None = None         # QONNX file from brevitas.export.export_qonnx of a W1A1 model
    params: str | None = None       # params.npz replacing the weights of driver_json / checkpoint / model
    model_cfg: str = ""             # JSON of get_model options, e.g. '{"in_features": 64}'
    input_scale: float | None = None   # --onnx: graph input = scale · pixel code + offset (None: from the graph)
    input_offset: float | None = None
    # -- check images
    dataset: str | None = None      # digits, fashion-mnist, cifar10, random (None: from the input shape)
    data_dir: str | None = None
    check_images: int = 100         # images every checked step's graph must reproduce bit-exact (0 = skip)
    # -- output
    out: str | None = None          # build directory (None: build/<model>)
    grad_bits: str = "2-8"          # gradient bit range of the driver's schedule (min-max)
    # -- the flow (what the steps read)
    part: str = "pynq-z2"           # FPGA part or board name (pynq-z2, ultra96, zcu104)
    pixel_max: float | None = None  # largest raw pixel code; None: from the data set (compile fills it in)
    clock_mhz: float = 100.0        # clock the folding targets
    target_fps: float | None = None  # folding: the cheapest that sustains this many images/s, or …
    lut_budget: int | None = None    # … the fastest that fits this many LUTs (neither: 80 % of the device)
    bits_max: int = 16              # run-time bit-width range of the engine: 1..bits_max
    input_quant: str = "host"       # 8-bit input quantiser on the host, or as a Thresholding layer in the fabric
    steps: list[str] = field(default_factory=_default_steps)  # step names, in order (bitcycle.compile.steps)
    start_step: str | None = None   # first step to run; its input is intermediate_models/<previous step>.onnx
    stop_step: str | None = None    # last step to run (inclusive)
    save_intermediate_models: bool = True  # intermediate_models/<step>.onnx after every step

    def validate(self) -> CompileConfig:
        """One line naming the first bad field and its legal values."""
        from bitcycle.compile.folding import resolve_part
        from bitcycle.compile.steps import check_step_names

        resolve_part(self.part)
        given = [s for s in SOURCES if getattr(self, s)]
        if len(given) > 1:
            raise BitCycleError(f"give one model source, not {' and '.join(given)}")
        if self.input_quant not in INPUT_QUANT:
            raise BitCycleError(f"input_quant must be 'host' or 'fabric', got {self.input_quant!r}")
        if not 1 <= int(self.bits_max) <= 16:
            raise BitCycleError(f"--bits-max must be in 1..16 (the engine's range), got {self.bits_max}")
        if self.target_fps is not None and self.lut_budget is not None:
            raise BitCycleError("give at most one of --target-fps and --lut-budget")
        self.grad_range()
        check_step_names(self.steps, self.start_step, self.stop_step)
        return self

    def require_source(self) -> CompileConfig:
        if not any(getattr(self, s) for s in SOURCES):
            raise BitCycleError("no model to compile: give --checkpoint, --model, --driver-json, --onnx or --config FILE")
        return self

    def grad_range(self) -> tuple[int, int]:
        try:
            lo, hi = (int(v) for v in self.grad_bits.split("-"))
        except ValueError:
            raise BitCycleError(f"--grad-bits must look like 2-8, got {self.grad_bits!r}") from None
        return lo, hi

    def fold_kwargs(self, device_luts: int | None = None) -> dict:
        """FoldForTarget's arguments: target_fps, or lut_budget (default 80 % of ``device_luts``)."""
        if self.target_fps is not None:
            return {"clock_mhz": self.clock_mhz, "target_fps": self.target_fps}
        budget = self.lut_budget
        if budget is None:
            if device_luts is None:
                from bitcycle.compile.folding import device_for, resolve_part

                device_luts = device_for(resolve_part(self.part))["LUT"]
            budget = int(0.8 * device_luts)
        return {"clock_mhz": self.clock_mhz, "lut_budget": budget}

    # -- JSON
    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict, where: str = "compile config") -> CompileConfig:
        data = dict(data)
        schema = data.pop("schema", SCHEMA)
        if schema != SCHEMA:
            raise BitCycleError(f"{where}: schema {schema!r}, this bitcycle reads {SCHEMA!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BitCycleError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data).validate()

    @classmethod
    def load(cls, path: str | Path) -> CompileConfig:
        path = Path(path)
        if path.is_dir():
            path = path / "compile_config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise BitCycleError(f"{path} not found: give the compile_config.json a `bitcycle compile` wrote") from None
        except json.JSONDecodeError as err:
            raise BitCycleError(f"{path} is not JSON ({err.msg}, line {err.lineno})") from None
        if not isinstance(data, dict):
            raise BitCycleError(f"{path} holds a JSON {type(data).__name__}, not a compile config object")
        return cls.from_dict(data, str(path))


def config_from_args(args) -> CompileConfig:
    """The CompileConfig of a ``bitcycle compile`` command line: ``--config FILE`` (if given), then every
    flag the user set on top of it (argparse defaults are None, so an unset flag keeps the file's value)."""
    base = CompileConfig.load(args.config) if getattr(args, "config", None) else CompileConfig()
    given = {f.name: getattr(args, f.name) for f in fields(CompileConfig)
             if getattr(args, f.name, None) is not None}
    if any(given.get(s) for s in SOURCES):  # a source on the command line replaces the file's
        for s in SOURCES:
            setattr(base, s, None)
    if "target_fps" in given:
        base.lut_budget = None
    if "lut_budget" in given:
        base.target_fps = None
    for k, v in given.items():
        setattr(base, k, v)
    return base.validate().require_source()
