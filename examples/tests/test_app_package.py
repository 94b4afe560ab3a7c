"""The application is a distribution of its own (examples/arrayml_app/pyproject.toml): its wheel
holds the `arrayml_app` package, built from the files where they are, and depends on the library
and matplotlib; the README's first command and the test sessions install it beside the library."""

from __future__ import annotations

import re

from app_scripts import EXAMPLES, ROOT
from wheels import build_wheel

APP = EXAMPLES / "arrayml_app"


def test_the_wheel_holds_the_arrayml_app_package_and_depends_on_the_library(tmp_path):
    modules = sorted(p.name for p in APP.glob("*.py"))
    wheel = build_wheel(APP, ["pyproject.toml", *modules], tmp_path)
    assert wheel.top_level == ["arrayml_app"]
    assert {n for n in wheel.names if not n.startswith("arrayml_app-")} == {f"arrayml_app/{m}" for m in modules}
    requires = re.findall(r"^Requires-Dist: ([\w-]+)", wheel.metadata, flags=re.MULTILINE)
    assert sorted(requires) == ["arrayml", "matplotlib"]


def test_the_readme_first_command_installs_both_then_runs_the_main_job():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)\n", readme).group(1)
    install, _, run = first.partition("&&")
    assert install.split() == ["pip", "install", "-e", ".", "-e", "examples/arrayml_app"]
    assert run.split("#")[0].split() == ["python", "examples/train.py", "--data-dir", "../shared/data/cifar10"]
