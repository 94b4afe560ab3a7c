"""`export.to_onnx` refuses, before tracing anything and naming the user's own path or argument:
a path it cannot write (a folder where nothing can be created, a missing folder, a folder's
name), `class_names` that are not one name (a string) per output, `metadata` that is not a
mapping of strings to strings (or that would overwrite what arrayml records itself)."""

from __future__ import annotations

import os

import pytest

import arrayml as am
from arrayml import backend
from backends import needs_onnx, onnx_reason

if onnx_reason() is None:
    from arrayml import export

pytestmark = needs_onnx


@pytest.fixture
def no_tracing(monkeypatch):
    """Any tracing fails the test: every refusal here must come first."""
    def traced(*args, **kwargs):
        raise AssertionError("the graph was traced before the refusal")

    monkeypatch.setattr(backend, "trace_onnx", traced)


def _unwritable_folder():
    """A folder in which nothing can be created, even by root: /proc (Linux)."""
    if not os.path.isdir("/proc"):
        pytest.skip("no /proc on this system (a folder even root cannot write in)")
    return "/proc"


def test_a_folder_where_nothing_can_be_created_is_refused_before_tracing_with_the_users_path(no_tracing):
    path = os.path.join(_unwritable_folder(), "m.onnx")
    with pytest.raises(export.ExportError, match=r"cannot write the ONNX model to /proc/m\.onnx: nothing can be "
                                                 r"created in the folder /proc \(.*\)") as info:
        export.to_onnx(am.MLP(4, [3], 2), path)
    assert ".part" not in str(info.value)
    assert isinstance(info.value, OSError)  # as the write's own failure would be: callers that catch OSError still do
    with pytest.raises(export.ExportError, match=r"/proc/m\.onnx"):
        export.check_path(path)


def test_a_missing_folder_and_a_folder_name_are_refused_before_tracing(no_tracing, tmp_path):
    with pytest.raises(export.ExportError, match=rf"cannot write the ONNX model to {tmp_path}/no/such/m\.onnx: the "
                                                 rf"folder {tmp_path}/no/such does not exist"):
        export.to_onnx(am.MLP(4, [3], 2), tmp_path / "no" / "such" / "m.onnx")
    with pytest.raises(export.ExportError, match=rf"cannot write the ONNX model to {tmp_path}: it is a folder"):
        export.to_onnx(am.MLP(4, [3], 2), tmp_path)
    assert sorted(os.listdir(tmp_path)) == []  # the writability probe leaves nothing behind
    (tmp_path / "m.onnx").mkdir()
    with pytest.raises(export.ExportError, match=r"m\.onnx: it is a folder"):
        export.to_onnx(am.MLP(4, [3], 2), str(tmp_path / "m.onnx"))


@pytest.mark.parametrize(("names", "message"), [
    (5, r"to_onnx class_names must be a list of 2 names \(strings\), one per output, got int 5"),
    ("ab", r"to_onnx class_names must be a list of 2 names \(strings\), one per output, got str 'ab'"),
    ([0, 1], r"to_onnx class_names\[0\] must be a string, got int 0"),
    (["cat", None], r"to_onnx class_names\[1\] must be a string, got NoneType None"),
    (["cat"], r"to_onnx: 1 class names for a model with 2 outputs"),
    (["cat", "cat"], r"to_onnx class_names must be distinct, got 'cat' twice"),
    ({"a": 0, "b": 1}, r"to_onnx class_names must be a list of 2 names .* got dict"),
])
def test_class_names_are_one_string_per_output(no_tracing, tmp_path, names, message):
    with pytest.raises(export.ExportError, match=message):
        export.to_onnx(am.MLP(4, [3], 2), tmp_path / "m.onnx", class_names=names)
    assert os.listdir(tmp_path) == []


def test_class_names_of_a_model_that_does_not_say_its_width_are_counted_against_its_output(no_tracing, tmp_path):
    model = am.Sequential(am.Linear(4, 3), am.ReLU(), am.Linear(3, 2), am.Softmax())
    with pytest.raises(export.ExportError, match=r"3 class names for a model with 2 outputs"):
        export.to_onnx(model, tmp_path / "m.onnx", class_names=["a", "b", "c"])


@pytest.mark.parametrize(("metadata", "message"), [
    (["run", "x"], r"to_onnx metadata must be a mapping of names to text \(dict\[str, str\]\), got list"),
    ({1: "x"}, r"to_onnx metadata keys must be strings, got int 1"),
    ({"epochs": 3}, r"to_onnx metadata\['epochs'\] must be a string \(str\(value\) to record a number\), got int 3"),
    ({"kind": "mine"}, r"to_onnx metadata\['kind'\] is what arrayml records itself \(.*\); choose another key"),
    ({"architecture": "{}"}, r"to_onnx metadata\['architecture'\] is what arrayml records itself"),
])
def test_metadata_is_a_mapping_of_strings_to_strings(no_tracing, tmp_path, metadata, message):
    with pytest.raises(export.ExportError, match=message):
        export.to_onnx(am.MLP(4, [3], 2), tmp_path / "m.onnx", metadata=metadata)
    assert os.listdir(tmp_path) == []


def test_good_names_and_metadata_are_written(tmp_path):
    import json

    import onnx

    path = tmp_path / "m.onnx"
    export.to_onnx(am.MLP(4, [3], 2), path, class_names=("cat", "dog"), metadata={"run": "r1", "note": ""})
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == ["cat", "dog"] and meta["run"] == "r1" and meta["note"] == ""
    assert os.listdir(tmp_path) == ["m.onnx"]


@pytest.mark.parametrize(("metadata", "message"), [
    ({"epochs": 3}, r"OnnxTrainStep.save metadata\['epochs'\] must be a string"),
    ({"optimizer": "mine"}, r"OnnxTrainStep.save metadata\['optimizer'\] is what arrayml records itself"),
    ({"architecture": "{}"}, r"OnnxTrainStep.save metadata\['architecture'\] is what arrayml records itself"),
    ("run 1", r"OnnxTrainStep.save metadata must be a mapping of names to text"),
])
def test_the_exported_training_step_checks_its_metadata_as_to_onnx_does(tmp_path, metadata, message):
    step = export.train_step_to_onnx(am.MLP(4, [3], 2), am.SoftmaxCrossEntropy(validate=False), am.SGD(0.1), 4)
    with pytest.raises(export.ExportError, match=message):
        step.save(tmp_path / "step.onnx", metadata=metadata)
    assert os.listdir(tmp_path) == []
    step.save(tmp_path / "step.onnx", metadata={"run": "r1"})
    assert os.listdir(tmp_path) == ["step.onnx"]
