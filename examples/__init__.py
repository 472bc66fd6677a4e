"""The newcomer's path: the needle-in-a-haystack demo (demo.py) and the fetcher of its model
and haystack (assets.py). Run from the repository root as `python -m examples.demo`; the
quality evaluations in eval/ import these modules as `from examples import assets, demo`."""
