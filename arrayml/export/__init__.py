"""Models that leave the library: ONNX export from the same layer code, through ndonnx.

    from arrayml import export
    export.to_onnx(model, "model.onnx")                      # inference: eval mode, any batch size
    step = export.train_step_to_onnx(model, SoftmaxCrossEntropy(validate=False),
                                     SGD(0.1, momentum=0.9), batch_size=64)
    loss = step(x, y, lr)                                    # one training step, run by onnxruntime
    step.save("train_step.onnx")                             # the whole step as one ONNX graph

There is no exporter here, no table mapping layers to ONNX operators. ndonnx implements the array
API standard with arrays that are nodes of an ONNX graph, and every layer of arrayml is written
against that standard: given ndonnx arrays, the layers' own ``forward`` — and for the training
step their hand-written ``backward``, the loss and the optimizer's pure ``update`` — build the
graph of what they compute (`arrayml.backend.trace_onnx`). A new layer or optimizer exports as
soon as it exists, provided it keeps the rules every compiled step needs: no host reads
(``float(x)``, ``bool(x)``), no Python branch on a value, arrays made through the namespace of
its inputs.

`to_onnx` writes an inference graph: the model in evaluation mode (batch norm's running
statistics), its parameters as constants, a dynamic batch dimension unless ``batch=`` fixes one,
and optionally the preprocessing inside the graph (`Preprocess`: the images as the data set
stores them go in, logits come out), with metadata (arrayml's version, the model's architecture, the
input's layout, the output, the class names).

`train_step_to_onnx` is `arrayml.compile.CompiledStep` with onnxruntime as the compiler: the same
pure function of (parameters, buffers, optimizer state, batch, rate), run on a clone of the
model, traced into one graph for a fixed batch size. Its inputs are ``params/<name>``,
``buffers/<name>``, ``opt_state/<slot>/<name>``, ``x``, ``y`` and ``lr``; its outputs
``new_params/<name>``, ``new_buffers/<name>``, ``new_opt_state/<slot>/<name>``, ``loss`` (and
``metrics/...``). Calling it runs one step and puts the results into the model and
``optimizer.state``, exactly as a compiled step does.

Bad input is refused before anything is written: a model without parameters, a path whose folder
does not exist (or is a file), a layer that cannot be traced (named, with the reason), a dtype
other than the model's, no ``[onnx]`` extra (`ExportError` or `BackendUnavailableError`, whose
message names the install command); a batch of another size than the exported step's fixed
one. Files are written through a temporary file renamed into place: a failed write leaves none.
"""

from ._common import OUTPUTS, ExportError, Preprocess, UnwritablePathError, check_path
from .inference import to_onnx
from .train_step import OnnxTrainStep, train_step_to_onnx

__all__ = ["ExportError", "OUTPUTS", "OnnxTrainStep", "Preprocess", "UnwritablePathError", "check_path", "to_onnx",
           "train_step_to_onnx"]
