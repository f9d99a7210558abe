"""Long fault runs that check nothing is lost or doubled (gateway kills, power cuts, hostile input):
`python -m soaks.NAME` from a checkout (docs/benchmarks.md). Not in the wheel."""
