"""``CompileConfig``: everything one ``bitcycle compile`` run was asked to do, typed and documented,
in the shape of FINN's ``DataflowBuildConfig`` (``steps``, ``start_step`` / ``stop_step``).

The compile writes it to ``build/<model>/compile_config.json``; ``bitcycle compile --config FILE``
runs it again (command-line flags given beside ``--config`` override its fields). The flow's steps
read only the flow fields (part … stop_step); the source and data fields say where the model and
the check images come from.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bitcycle.errors import BitCycleError

SCHEMA = "bitcycle.compile_config/1"
DEFAULT_GRAD_RANGE = (2, 8)
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
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
    model_cfg: str = ""             # JSON of get_model options (--set KEY=VALUE), e.g. '{"in_features": 64}'
    input_scale: float | None = None   # --onnx: graph input = scale · pixel code + offset (None: from the graph)
    input_offset: float | None = None
    # -- check images
    dataset: str | None = None      # digits, fashion-mnist, cifar10, random (None: from the input shape)
    data_dir: str | None = None
    check_images: int = 100         # images every checked step's graph must reproduce bit-exact (0 = skip)
    rtlsim_check: int = 0           # of those, images the engine stage is checked on again with exec_mode
                                    # rtlsim: its generated RTL in Verilator (FINN's rtlsim check; 0 = off)
    # -- output
    out: str | None = None          # build directory (None: build/<model>)
    # -- driver.json's gradient bit range: the bit widths the driver's schedule may use
    grad_bits: str | None = None    # the training schedule (train/run's SPEC, e.g. cosine:2-8x4): range from it
    grad_range: str | None = None   # LO-HI given directly (must hold grad_bits' range); neither: 2-8
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
        if int(self.rtlsim_check) < 0:
            raise BitCycleError(f"--rtlsim-check must be >= 0 images (0 = off), got {self.rtlsim_check}")
        if self.target_fps is not None and self.lut_budget is not None:
            raise BitCycleError("give at most one of --target-fps and --lut-budget")
        self.model_options()
        self._read_old_grad_bits_range()
        self.grad_bits_range()
        check_step_names(self.steps, self.start_step, self.stop_step)
        return self

    def require_source(self) -> CompileConfig:
        if not any(getattr(self, s) for s in SOURCES):
            raise BitCycleError("no model to compile: give --checkpoint, --model, --driver-json, --onnx or --config FILE")
        return self

    def model_options(self) -> dict:
        """get_model options from ``model_cfg`` (a JSON object)."""
        if not self.model_cfg:
            return {}
        try:
            opts = json.loads(self.model_cfg)
        except json.JSONDecodeError as err:
            raise BitCycleError(f"model_cfg {self.model_cfg!r} is not JSON ({err.msg}); give options as --set KEY=VALUE") from None
        if not isinstance(opts, dict):
            raise BitCycleError(f"model_cfg {self.model_cfg!r} is not a JSON object; give options as --set KEY=VALUE")
        return opts

    def _read_old_grad_bits_range(self) -> None:
        """``grad_bits`` = LO-HI is the old meaning (compile's --grad-bits was a range, and so is the
        field of compile_config.json files written then): read it as ``grad_range``, with a note."""
        if self.grad_bits is None or not _RANGE.match(str(self.grad_bits)):
            return
        from bitcycle.cliutil import deprecation_note

        old = str(self.grad_bits).strip()
        if self.grad_range is not None:
            raise BitCycleError(f"--grad-bits {old} is a range, beside --grad-range {self.grad_range}; give the range "
                                f"once as --grad-range LO-HI (and the schedule, if you like, as --grad-bits SPEC)")
        deprecation_note(f"--grad-bits {old} (a range) in compile",
                         f"--grad-range {old}, or the training schedule, e.g. --grad-bits cosine:{old}x4")
        self.grad_bits, self.grad_range = None, old

    def grad_bits_range(self) -> tuple[int, int]:
        """(lo, hi) of driver.json's gradient bits: ``grad_range``, else the ``grad_bits`` schedule's, else 2-8."""
        from bitcycle.schedule import parse_grad_bits

        self._read_old_grad_bits_range()
        need = None
        if self.grad_bits is not None:
            spec = parse_grad_bits(self.grad_bits)
            if spec.is_fp32:
                raise BitCycleError("--grad-bits fp32 has no meaning on the engine (its gradients are integers); "
                                    "give the schedule the driver will run, e.g. cosine:2-8x4, or --grad-range LO-HI")
            need = (spec.b_min, spec.b_max)
        if self.grad_range is None:
            lo, hi = need or DEFAULT_GRAD_RANGE
        else:
            m = _RANGE.match(str(self.grad_range))
            if not m:
                raise BitCycleError(f"--grad-range must look like 2-8 (LO-HI bits), got {self.grad_range!r}")
            lo, hi = int(m.group(1)), int(m.group(2))
        if not 1 <= lo <= hi <= int(self.bits_max):
            raise BitCycleError(f"gradient bits {lo}-{hi} must satisfy 1 <= LO <= HI <= --bits-max {self.bits_max} "
                                f"(the engine's run-time range); e.g. --grad-range 2-8")
        if need is not None and not lo <= need[0] <= need[1] <= hi:
            raise BitCycleError(f"--grad-bits {self.grad_bits} needs {need[0]}-{need[1]} bits but --grad-range is "
                                f"{lo}-{hi}; widen --grad-range or drop it (the range then follows the schedule)")
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
    if "grad_bits" in given and "grad_range" not in given:  # a schedule given alone brings its own range
        base.grad_range = None
    if "grad_range" in given and "grad_bits" not in given:  # … and a range given alone replaces the file's pair
        base.grad_bits = None
    for k, v in given.items():
        setattr(base, k, v)
    model_set = dict(getattr(args, "model_set", None) or [])
    if model_set:  # --set KEY=VALUE on top of the file's options
        base.model_cfg = json.dumps({**base.model_options(), **model_set})
    return base.validate().require_source()
