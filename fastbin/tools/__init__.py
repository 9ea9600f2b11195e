"""The command line, the demo and the benchmark runner: may import any layer."""
