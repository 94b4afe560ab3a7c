"""Where the application's scripts are. They are not a package: they import only the installed
`arrayml` and `arrayml_app`; `load_script` (from the library's test helpers) imports one by path."""

from __future__ import annotations

from scripts import ROOT, load_script

EXAMPLES = ROOT / "examples"
TRAIN = EXAMPLES / "train.py"
TORCH_REF = EXAMPLES / "torch_reference.py"
EXPERIMENTS = EXAMPLES / "experiments"
BENCHMARKS = ROOT / "benchmarks"

__all__ = ["BENCHMARKS", "EXAMPLES", "EXPERIMENTS", "ROOT", "TORCH_REF", "TRAIN", "load_script"]
