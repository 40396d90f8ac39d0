"""BitCycle: binary neural network training on Zynq FPGAs with cyclic gradient precision.

Stages, in the one direction data flows: ``nets`` → ``train`` → ``compile`` → ``driver``;
``golden`` (the numpy oracle of every hardware operation) and ``quant`` are used by all.
A lower stage never imports a higher one.
"""

__version__ = "0.1.0"
