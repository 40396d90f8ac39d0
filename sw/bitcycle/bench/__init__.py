"""Every benchmark, on the top floor: a module may import any stage (nets, train, compile,
driver, golden), and no stage imports this package. ``bitcycle bench NAME`` (``bench.cli``) runs
one; each writes ``build/bench/NAME.json`` with the figures it measured, and a table."""
