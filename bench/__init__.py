"""Performance benchmarks. A package so that the end-to-end benchmarks in bench/python run as
modules from the repository root (`python -m bench.python.bench_attention`) and the quality
evaluations in eval/ can import bench/python/commit.py without sys.path changes."""
