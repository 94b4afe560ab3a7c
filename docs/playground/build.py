"""Build the playground page: export its graphs with arrayml and copy the page and onnxruntime-web.

    npm ci --ignore-scripts --prefix docs/playground     # onnxruntime-web, pinned by package-lock.json
    python docs/playground/build.py --out docs/_build/html/playground

For each network of `NETWORKS` it runs, with arrayml, the Python code that the page shows:
``export.train_step_to_onnx(...).save(...)`` (the whole training step: forward, loss, the
hand-written backward, the optimizer's update; the learning rate a graph input) and
``export.to_onnx(..., weights="inputs", output="probabilities")`` (the inference graph the page
evaluates on a grid with the current weights, to draw the decision boundary). The code shown is
the code run: each call is kept as text and executed from that text in the output folder.

The output folder gets the graphs, ``manifest.json`` (each network's graphs, their inputs and
outputs with shapes, dtypes and initial values, the code that made them, arrayml's and
onnxruntime-web's versions, the build command), the page (``index.html``, ``src/``) and, under
``ort/``, the onnxruntime-web files the page loads: its WebAssembly build runs every graph, served
from this folder (no CDN).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: The onnxruntime-web files the page needs: the ES module (WebAssembly backend only), the
#: Emscripten glue it imports, and the WebAssembly binary (single-threaded use of its build).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")

#: The exported step's fixed batch size.
BATCH_SIZE = 32

#: The optimizers: constructor call (the rate is the graph's input `lr`; this one is unused by the
#: graph) and the rate the page starts from.
OPTIMIZERS = {
    "sgd": ("am.SGD(0.1, momentum=0.9)", 0.1, "SGD, momentum 0.9"),
    "adam": ("am.Adam(0.01)", 0.01, "Adam (β = 0.9, 0.999, ε = 1e-8)"),
}
HIDDEN = ([8], [16, 16], [32, 32, 32])
ACTIVATIONS = ("relu", "tanh")
#: What the page selects first (and what the browser test trains).
DEFAULT = "2-16-16-2-relu-adam"


@dataclass(frozen=True)
class Network:
    hidden: tuple[int, ...]
    activation: str

    @property
    def layers(self) -> list[int]:
        return [2, *self.hidden, 2]

    @property
    def id(self) -> str:
        return "-".join(map(str, self.layers)) + f"-{self.activation}"

    @property
    def model_code(self) -> str:
        return f"am.MLP(2, {list(self.hidden)}, 2, activation={json.dumps(self.activation)}, rng=0)"


def step_code(net: Network, optimizer: str, file: str) -> str:
    return (
        "import arrayml as am\n"
        "from arrayml import export\n\n"
        f"model = {net.model_code}\n"
        "step = export.train_step_to_onnx(\n"
        f"    model, am.SoftmaxCrossEntropy(validate=False), {OPTIMIZERS[optimizer][0]}, batch_size={BATCH_SIZE})\n"
        f"step.save({json.dumps(file)})\n"
    )


def infer_code(net: Network, file: str) -> str:
    return (
        "import arrayml as am\n"
        "from arrayml import export\n\n"
        f"model = {net.model_code}\n"
        f"export.to_onnx(model, {json.dumps(file)},\n"
        "               weights=\"inputs\", output=\"probabilities\")\n"
    )


def run_code(code: str, folder: Path) -> dict[str, Any]:
    """Execute `code` (the text the page shows) in `folder`; its variables."""
    namespace: dict[str, Any] = {"__name__": "playground_export"}
    with contextlib.chdir(folder):
        exec(compile(code, "<export>", "exec"), namespace)
    return namespace


def describe_io(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The graph's inputs and outputs: name, shape (a name for a dynamic dimension), dtype."""
    import onnx

    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.INT64: "int64"}
    graph = onnx.load(path).graph

    def one(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        dims = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
        return {"name": value.name, "shape": dims, "dtype": names[t.elem_type]}

    return [one(v) for v in graph.input], [one(v) for v in graph.output]


def initial_values(model: Any, optimizer: Any) -> dict[str, dict[str, Any]]:
    """How the page initialises each input of the step: the parameters as arrayml's Linear
    draws them (`arrayml.modules.init`, "kaiming": N(0, 1/in) for the first layer, N(0, 2/in)
    after, biases 0), the optimizer's state as ``optimizer.state_for`` makes it (checked: zeros)."""
    import numpy as np

    import arrayml as am
    from arrayml import backend

    init: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        if isinstance(module, am.Linear):
            if module.init != "kaiming":
                raise SystemExit(f"build.py: layer {name} uses init={module.init!r}; the page draws 'kaiming' only")
            std = math.sqrt((1.0 if module.input_layer else 2.0) / module.in_features)
            init[f"params/{name}.weight"] = {"kind": "normal", "std": std}
            init[f"params/{name}.bias"] = {"kind": "zeros"}
    missing = {f"params/{n}" for n in model.parameters()} - set(init)
    if missing or model.named_buffers():
        raise SystemExit(f"build.py: the page cannot initialise {sorted(missing) or list(model.named_buffers())}")
    state = optimizer.state_for(model.parameters())
    flat: list[tuple[str, Any]] = []

    def walk(tree: Any, path: str) -> None:
        if isinstance(tree, dict):
            for key, value in tree.items():
                walk(value, f"{path}/{key}")
        else:
            flat.append((path, tree))

    walk(state, "opt_state")
    for name, value in flat:
        if np.any(backend.to_numpy(value) != 0):
            raise SystemExit(f"build.py: the optimizer's initial {name} is not zeros; the page starts from zeros")
        init[name] = {"kind": "zeros"}
    return init


def runtime_check_graph() -> str:
    """A one-node ONNX graph (y = x), base64: what the page runs first, so that a runtime that
    cannot start is told apart from a graph that cannot load."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "runtime_check",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return base64.b64encode(model.SerializeToString()).decode("ascii")


def ort_version(node_modules: Path) -> str:
    return str(json.loads((node_modules / "onnxruntime-web" / "package.json").read_text())["version"])


def export_graph(job: tuple[str, Network, str | None], folder: Path) -> dict[str, Any]:
    """Export one graph (``("infer", net, None)`` or ``("step", net, optimizer)``) into `folder`
    by running the code the page shows; its manifest entry."""
    kind, net, optimizer = job
    if kind == "infer":
        file = f"infer-{net.id}.onnx"
        code = infer_code(net, file)
        run_code(code, folder)
        inputs, outputs = describe_io(folder / file)
    else:
        assert optimizer is not None
        file = f"step-{net.id}-{optimizer}.onnx"
        code = step_code(net, optimizer, file)
        made = run_code(code, folder)
        inputs, outputs = describe_io(folder / file)
        init = initial_values(made["model"], made["step"].optimizer)
        for spec in inputs:
            if spec["name"] in init:
                spec["init"] = init[spec["name"]]
    return {"file": f"graphs/{file}", "code": code, "inputs": inputs, "outputs": outputs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="the folder to build the page into: created, or replaced if it holds an earlier build")
    parser.add_argument("--node-modules", type=Path, default=HERE / "node_modules",
                        help="where `npm ci --ignore-scripts --prefix docs/playground` installed onnxruntime-web (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                        help="graphs exported at once, each in a process of its own (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive whole number, got {args.jobs}")
    dist = args.node_modules / "onnxruntime-web" / "dist"
    absent = [f for f in ORT_FILES if not (dist / f).is_file()]
    if absent:
        parser.error(f"onnxruntime-web's {', '.join(absent)} not found in {dist}; install it first: "
                     "npm ci --ignore-scripts --prefix docs/playground")
    out: Path = args.out.resolve()
    if out.exists():
        if not out.is_dir():
            parser.error(f"--out {out} is a file, not a folder")
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            parser.error(f"--out {out} is a folder that holds something other than an earlier build of the page "
                         "(no manifest.json): name a new or empty folder")

    import arrayml as am

    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    (out / "graphs").mkdir(parents=True)
    (out / "ort").mkdir()

    nets = [Network(tuple(hidden), activation) for hidden in HIDDEN for activation in ACTIVATIONS]
    jobs: list[tuple[str, Network, str | None]] = [("infer", net, None) for net in nets]
    jobs += [("step", net, optimizer) for net in nets for optimizer in OPTIMIZERS]
    if args.jobs == 1:
        made = [export_graph(job, out / "graphs") for job in jobs]
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            made = list(pool.map(export_graph, jobs, [out / "graphs"] * len(jobs)))
    graphs = {(kind, net, optimizer): entry for (kind, net, optimizer), entry in zip(jobs, made)}
    networks = [{
        "id": f"{net.id}-{optimizer}",
        "layers": net.layers,
        "activation": net.activation,
        "optimizer": optimizer,
        "optimizer_text": OPTIMIZERS[optimizer][2],
        "default_lr": OPTIMIZERS[optimizer][1],
        "step": graphs["step", net, optimizer],
        "infer": graphs["infer", net, None],
    } for net in nets for optimizer in OPTIMIZERS]
    if DEFAULT not in {n["id"] for n in networks}:
        raise SystemExit(f"build.py: the default network {DEFAULT} is not built")

    for name in ORT_FILES:
        shutil.copy2(dist / name, out / "ort" / name)
    shutil.copy2(args.node_modules / "onnxruntime-web" / "README.md", out / "ort" / "README.md")
    shutil.copy2(HERE / "index.html", out / "index.html")
    shutil.copytree(HERE / "src", out / "src")

    manifest = {
        "arrayml_version": am.__version__,
        "onnxruntime_web_version": ort_version(args.node_modules),
        "build_command": "npm ci --ignore-scripts --prefix docs/playground && python docs/playground/build.py --out <folder>",
        "batch_size": BATCH_SIZE,
        "default": DEFAULT,
        "ort_files": [f"ort/{f}" for f in ORT_FILES],
        "runtime_check": runtime_check_graph(),
        "networks": networks,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"build.py: {len(networks)} training steps and {len(nets)} inference graphs (arrayml "
          f"{am.__version__}, onnxruntime-web {manifest['onnxruntime_web_version']}) in {out}, "
          f"{time.perf_counter() - started:.1f} s with {args.jobs} process(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
