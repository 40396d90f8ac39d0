"""The hardware/software interface that the compile stage writes and the driver reads: the
register map generated from ``hw/regs/bitcycle.rdl`` (``regmap``) and the ``driver.json`` schema
(``driver_json``). It sits below both stages, so neither imports the other. Plain Python + numpy:
it runs on the PYNQ board image too. (The stream format is in ``bitcycle.golden.stream``.)
"""
