"""The demo (`bash tools/demo.sh`, i.e. `python -m demo`) and the simulated fleet (`python -m demo.fleet`):
counters, POS and platform around a real gateway, from a checkout. Not in the wheel."""
