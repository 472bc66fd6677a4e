"""Quality of Sketch&Walk against dense attention on real models: quality_sweep.py (RULER and
perplexity against density, the walk ablation) and decode_quality.py (the decode selection on
the GPU machine), with their results in eval/results/. Run from the repository root, e.g.
`python -m eval.decode_quality --help`.

The package name shadows no module (there is no stdlib `eval` module; the builtin function is
not looked up by imports). Modules import from it as `from eval import x` or
`import eval.x as y`, never a bare `import eval.x`, which would bind the name `eval` and hide
the builtin function in the importing module."""
