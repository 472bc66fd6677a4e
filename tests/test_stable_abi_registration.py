"""The build's list of stable-ABI ops (sketchwalk.build_info()["stable_abi_ops"], from
_build_info.py.in) says where each op's kernels are registered: every kernel of a listed op
through the stable C shim from csrc/stable/, every kernel of the others from
csrc/registration.cpp (docs/stable_abi.md). A list that drifted from the registrations would
make `python -m sketchwalk info` misreport the build. Runs against whichever build is installed:
the regular one (empty list) and scripts/test_stable_abi.sh's."""

import re

import pytest
import torch

import sketchwalk

# Kernel lines of torch._C._dispatch_dump: "<key>: registered at <file>:<line> :: ...".
KERNEL_KEYS = ("CPU:", "CUDA:", "CompositeExplicitAutograd[alias]:")


def kernel_files(op: str) -> dict[str, str]:
    dump = torch._C._dispatch_dump(f"sketchwalk::{op}")
    files = {}
    for line in dump.splitlines():
        if line.startswith(KERNEL_KEYS):
            key, rest = line.split(": registered at ", 1)
            files[key] = rest.split(" :: ", 1)[0]
    return files


def all_ops() -> list[str]:
    names = {
        s.name.split("::", 1)[1]
        for s in torch._C._jit_get_all_schemas()
        if s.name.startswith("sketchwalk::")
    }
    return sorted(names)


@pytest.mark.skipif(not hasattr(torch._C, "_dispatch_dump"), reason="no dispatcher dump here")
def test_stable_abi_ops_are_registered_from_csrc_stable():
    stable = set(sketchwalk.build_info()["stable_abi_ops"])
    ops = all_ops()
    assert len(ops) == 20, ops  # docs/stable_abi.md counts 20
    assert stable <= set(ops), stable - set(ops)
    # The stable build moves every op (no torch C++ symbol in the module), the regular one none.
    abi = sketchwalk.build_info()["abi"]
    assert stable == (set(ops) if abi == "stable" else set()), (abi, sorted(stable))
    for op in ops:
        files = kernel_files(op)
        assert files, f"{op}: no kernel registered"
        for key, where in files.items():
            if op in stable:
                assert "csrc/stable/" in where, (
                    f"{op} {key} registered at {where}, not csrc/stable/"
                )
            else:
                assert re.search(r"csrc/registration\.cpp:\d+$", where), (
                    f"{op} {key} registered at {where}, not csrc/registration.cpp"
                )
