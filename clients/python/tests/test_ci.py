"""The CI stage's script (ci.sh): how it is called by hand must not harm it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List

SCRIPT = Path(__file__).resolve().parents[1] / "ci.sh"


def test_ci_sh_without_a_report_path_exits_64_and_leaves_itself_intact(tmp_path: Path) -> None:
    # A copy in a folder of its own, so that a script that went on could harm only the copy.
    copy = tmp_path / "ci.sh"
    shutil.copyfile(SCRIPT, copy)
    original = copy.read_bytes()
    calls: List[List[str]] = [[], ["counts"], ["a.xml", "b.xml"]]
    for arguments in calls:
        done = subprocess.run(["bash", str(copy), *arguments], capture_output=True, timeout=60, cwd=str(tmp_path))
        assert done.returncode == 64, (arguments, done.stdout[-500:], done.stderr[-500:])
        assert b"usage:" in done.stderr
        assert copy.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci.sh"]


def test_ci_sh_counts_a_missing_report_as_one_failure(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SCRIPT), "counts", str(tmp_path / "missing.xml")], capture_output=True, timeout=60)
    assert (done.returncode, done.stdout.split()) == (0, [b"0", b"1"])
