"""What the tests, benchmarks, soaks, the HIL suite and the demo start: brokers, a PostgreSQL cluster, the
gateway process, virtual devices, the Pico model, the POS simulator. Runs from a checkout; not in the
wheel."""
