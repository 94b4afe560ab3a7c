"""The README cannot rot: every ```python block in it runs as written, on its own, in a fresh
folder, on a machine with only what the README's install command (`pip install -e . -e
examples/arrayml_app`) brings (no torch, no CuPy, no GPU), unless its first line says it needs more (``# needs: jax``): then with that too;
and a ```text block right under it is what it printed (compared as the guide's are, tests/guide_blocks.py).
(The accuracy range it states is checked beside the headline run, in examples/tests/test_cli.py.)"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from guide_blocks import blocks, differences
from scripts import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
SHOWN = {block.code: block.shown for block in blocks(README)}  # the output block under each, if any

# What the README's install command does not bring: importing these fails inside the blocks (an
# import hook, so that they are absent from sys.modules as on a machine without them).
NOT_INSTALLED = ("torch", "cupy", "array_api_strict", "jax", "ndonnx", "onnxruntime", "numba")


def _needs(code: str) -> tuple[str, ...]:
    """What a block's first line says it needs beyond the install command: ``# needs: jax``."""
    first = code.splitlines()[0] if code else ""
    if not first.startswith("# needs:"):
        return ()
    return tuple(first[len("# needs:"):].split("(")[0].replace(",", " ").split())


def _prelude(hidden: tuple[str, ...]) -> str:
    return f"""import sys


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the README test)", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


def test_the_readme_has_its_python_blocks_and_stays_short():
    assert len(BLOCKS) >= 1
    assert len(README.splitlines()) <= 200, "the README fits on a few screens; the rest belongs in docs/"
    assert README.index("```bash\npip install -e . -e examples/arrayml_app") < README.index("\n## ")  # the commands first


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_every_python_block_runs_as_written(code, tmp_path):
    script = tmp_path / "block.py"
    needs = _needs(code)
    for module in needs:
        pytest.importorskip(module, reason=f"this README block needs {module}, which is not installed")
    hidden = tuple(m for m in NOT_INSTALLED if m not in needs)
    script.write_text(_prelude(hidden) + "exec(compile(open(sys.argv[1]).read(), 'README block', 'exec'))\n")
    (tmp_path / "readme_block.py").write_text(code)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ARRAYML_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(script), "readme_block.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"README block fails:\n{code}\n{proc.stderr}"
    problem = differences(SHOWN[code], proc.stdout)
    assert problem is None, f"README block:\n{code}\n{problem}"


_REPL = """
import code


class _Console(code.InteractiveConsole):
    def showsyntaxerror(self, filename=None, **kwargs):
        super().showsyntaxerror(filename, **kwargs)
        sys.exit(3)

    def showtraceback(self):
        super().showtraceback()
        sys.exit(4)


def _displayhook(value):
    # what a REPL would echo; an array printed on every step of a loop is the failure
    if value is not None and hasattr(value, "shape") and hasattr(value, "dtype"):
        print(f"ECHOED AN ARRAY of shape {tuple(value.shape)}", file=sys.stderr)
        sys.exit(5)


sys.displayhook = _displayhook
console = _Console()
for line in open(sys.argv[1]).read().splitlines():
    console.push(line)
console.push("")
"""


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_every_python_block_pastes_into_a_repl_and_writes_nothing_where_it_runs(code, tmp_path):
    """Pasted line by line into Python's interactive console: no syntax error (a blank line ends
    every indented block before the code after it), no array echoed (a loop that prints an array
    every step), and no file left in the folder it ran in (the checkout, for a reader)."""
    needs = _needs(code)
    for module in needs:
        pytest.importorskip(module, reason=f"this README block needs {module}, which is not installed")
    hidden = tuple(m for m in NOT_INSTALLED if m not in needs)
    runner = tmp_path.parent / f"{tmp_path.name}-runner"
    runner.mkdir()
    (runner / "repl.py").write_text(_prelude(hidden) + _REPL)
    (runner / "readme_block.py").write_text(code)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(runner), "ARRAYML_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(runner / "repl.py"), str(runner / "readme_block.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"README block fails when pasted into a REPL:\n{code}\n{proc.stderr}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the block wrote into the folder it ran in"
