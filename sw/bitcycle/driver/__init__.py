"""The BitCycle driver: one ``Accelerator`` API over the board (``pynq``), the Verilated RTL
(``sim``) and the golden model (``emu``).

Imports numpy only (never torch or FINN): it runs on a PYNQ board image with numpy < 2.
"""

from bitcycle.driver.accelerator import BACKENDS, Accelerator
from bitcycle.hwif.driver_json import DriverSpec, load as load_driver_json, spec_for_model

__all__ = ["BACKENDS", "Accelerator", "DriverSpec", "load_driver_json", "spec_for_model"]
