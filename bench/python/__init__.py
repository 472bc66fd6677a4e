"""End-to-end benchmarks (bench_attention.py, profile_decode.py) and the commit id that
results record (commit.py)."""
