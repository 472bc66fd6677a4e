"""The commit id that every result records: bench/python/bench_attention.py,
eval/quality_sweep.py and eval/decode_quality.py all call git_commit(). Standard library only,
so importing it costs the evaluations nothing.

SKETCHWALK_COMMIT wins when set (bench/gpu_run.sh's header sets it: a copy of the tree on
another machine may lack the git history). Otherwise `git describe --always --dirty=+dirty`
of this checkout: the abbreviated hash (tag-N-g<hash> once the repository has tags), with
"+dirty" when tracked files differ from HEAD (untracked files do not count). "unknown" when
neither is available.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def git_commit() -> str:
    """SKETCHWALK_COMMIT, else `git describe --always --dirty=+dirty` of REPO, else "unknown"."""
    override = os.environ.get("SKETCHWALK_COMMIT")
    if override:
        return override
    # Without REPO/.git (a file in a worktree, a folder otherwise) git would describe whatever
    # repository encloses this copy, if any.
    if not (REPO / ".git").exists():
        return "unknown"
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty=+dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
