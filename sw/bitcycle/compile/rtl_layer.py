"""What every BitCycle RTL layer backend (``BitSerialMVAU_rtl``, ``BitCycleMaxPool_rtl``,
``BitCycleDWC_rtl``) shares: its hw/rtl sources copied once per project into
``<codegen>/bitcycle_rtl/``, a Verilog wrapper top per node rendered from a package template (FINN's
convention for RTL ops: Vivado's module reference and IP packager take a Verilog top), and FINN's
RTLBackend hooks (file list, the IPI commands CreateStitchedIP parses, the interface names).
"""

from __future__ import annotations

import filecmp
import re
import shutil
from pathlib import Path

from bitcycle.errors import BitCycleError

SHARED_DIR = "bitcycle_rtl"  # one copy of the shared hw/rtl sources per project, beside the node dirs
TEMPLATES = Path(__file__).resolve().parent / "templates"


def rtl_dir() -> Path:
    """hw/rtl of the source tree (the package is installed editable from the repository)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "hw" / "rtl").is_dir():
            return parent / "hw" / "rtl"
    raise BitCycleError("hw/rtl not found next to the bitcycle package; run from a source checkout (pip install -e .)")


def install_sources(dest: Path, names) -> list[Path]:
    """Copy hw/rtl's ``names`` into ``dest`` (an identical copy is left alone); the copies."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        src, dst = rtl_dir() / name, dest / name
        if not dst.is_file() or not filecmp.cmp(src, dst, shallow=False):
            shutil.copy(src, dst)
        out.append(dst)
    return out


def render_template(name: str, values: dict) -> str:
    """templates/``name`` with every ``@KEY@`` replaced; a missing template or an unfilled key is one line."""
    path = TEMPLATES / name
    if not path.is_file():
        raise BitCycleError(f"{name} is missing from the bitcycle package (package data); "
                            "reinstall bitcycle (pip install -e .)")
    text = path.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if left:
        raise BitCycleError(f"{name} names {', '.join(left)}, which its renderer does not fill")
    return text


class GeneratedRtl:
    """Mixin of an ``<op>_rtl`` backend (listed before FINN's classes): ``SOURCES`` are the shared
    hw/rtl files the node's ``<node>_wrapper.v`` instantiates."""

    SOURCES: tuple[str, ...] = ()

    def _gen_dir(self) -> Path:
        gen = self.get_nodeattr("code_gen_dir_ipgen")  # type: ignore[attr-defined]
        if not gen:
            raise BitCycleError(f"layer {self.onnx_node.name}: code_gen_dir_ipgen is not set (run PrepareIP)")  # type: ignore[attr-defined]
        return Path(gen)

    def shared_dir(self) -> Path:
        return self._gen_dir().parent / SHARED_DIR

    def _top(self) -> str:
        return self.get_nodeattr("gen_top_module") or f"{self.onnx_node.name}_wrapper"  # type: ignore[attr-defined]

    def get_rtl_file_list(self, abspath=False):
        top = self._top()
        if not abspath:
            return [f"{top}.v", *self.SOURCES]
        return [self._gen_dir() / f"{top}.v", *(self.shared_dir() / f for f in self.SOURCES)]

    def ipi_extra_files(self) -> list[Path]:
        """Files besides the HDL the project needs (memory images a wrapper loads)."""
        return []

    def code_generation_ipi(self):
        # CreateStitchedIP splits each add_files command and wants exactly 3 tokens: one file per command
        files = [*self.get_rtl_file_list(abspath=True), *self.ipi_extra_files()]
        return [f"add_files -norecurse {f}" for f in files] + [
            f"create_bd_cell -type module -reference {self.get_nodeattr('gen_top_module')} {self.onnx_node.name}"]  # type: ignore[attr-defined]

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()  # type: ignore[misc]
        intf["axilite"], intf["aximm"] = [], []
        return intf

    def start_hdl(self) -> tuple[Path, str]:
        """(the node's generation directory, its wrapper top's name), the shared sources installed."""
        gen = self._gen_dir().resolve()  # $readmemh needs absolute paths (FINN's RTL ops do the same)
        gen.mkdir(parents=True, exist_ok=True)
        top = f"{self.onnx_node.name}_wrapper"  # type: ignore[attr-defined]
        self.set_nodeattr("gen_top_module", top)  # type: ignore[attr-defined]
        install_sources(self.shared_dir().resolve(), self.SOURCES)
        return gen, top

    def finish_hdl(self, gen: Path) -> None:
        self.set_nodeattr("ipgen_path", str(gen))  # type: ignore[attr-defined]
        self.set_nodeattr("ip_path", str(gen))  # type: ignore[attr-defined]
