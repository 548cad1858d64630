"""The formal side, torch-free: finding and running TLC (`toolchain`), reading its output
(`output`), the model manifest (`manifest`), the Python <-> TLA+ names (`vocabulary`),
spec-vs-code graph comparisons (`compare`), replay of a recorded run (`replay`) and
trace validation (`trace`)."""
