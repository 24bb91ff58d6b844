"""A model in ONNX, for runtimes other than PyTorch (onnxruntime, TensorRT, browsers' onnxruntime-web).

The file is exported on the first request and cached as ``model.onnx`` beside the model's weights: a model's
weights never change, so neither does its export. It is written under a temporary name and renamed, so a
concurrent reader sees the whole file or none; a process makes one export at a time.

The graph is the network followed by a softmax: input ``image``, float32 ``[N, 1, 28, 28]`` in 0..1 (the batch
axis is dynamic); output ``probabilities``, float32 ``[N, 10]``, the same as /predict's. ONNX opset 17.
"""

import os
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

from service.domain import model_store
from service.domain.mnist import IMAGE_SIDE

ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
ONNX_INPUT = "image"
ONNX_OUTPUT = "probabilities"

# The TorchScript exporter (dynamo=False) is used on purpose: it needs only the `onnx` package, where the
# torch.export-based default also needs `onnxscript`; it warns that it is deprecated at every export.
warnings.filterwarnings(
    "ignore", message="You are using the legacy TorchScript-based ONNX export", category=DeprecationWarning
)


# torch.onnx.export is not re-entrant (it sets process-wide state while it traces): two at once fail. So a
# process's exports run one at a time, and a request that waited finds the file that the one before it wrote.
_EXPORTING = threading.Lock()


def onnx_file(model_dir: Path, model_id: str) -> Path:
    """The model's ONNX file, exported now unless it already is. ModelNotFound if the model is deleted before
    its export is in place; it may be deleted after, so open the file with ``model_store.open_file``."""
    exported = model_store.weights_file(model_dir, model_id).with_name(ONNX_FILE)
    if exported.is_file():
        return exported
    with _EXPORTING:
        if exported.is_file():  # exported while this request waited
            return exported
        network, _ = model_store.load_network(model_dir, model_id)
        # Staged beside the models' folders, then renamed into the model's. Not `atomic_path(exported)`: it makes
        # the folder of its file when there is none, so a model deleted meanwhile would come back as a folder
        # without metadata.
        descriptor, name = tempfile.mkstemp(prefix=f".{model_id}.", suffix=f".{ONNX_FILE}.part", dir=model_dir)
        os.close(descriptor)
        staging = Path(name)
        try:
            export_onnx(network, staging)
            os.chmod(staging, 0o644)  # mkstemp's files are private
            try:
                os.replace(staging, exported)
            except FileNotFoundError:  # the model's folder was renamed away: deleted during the export
                raise model_store.ModelNotFound(f"no model {model_id!r}") from None
        finally:
            staging.unlink(missing_ok=True)
    return exported


def export_onnx(network: nn.Module, path: Path) -> None:
    example = torch.zeros(1, 1, IMAGE_SIDE, IMAGE_SIDE)
    torch.onnx.export(
        nn.Sequential(network, nn.Softmax(dim=1)).eval(),
        (example,),
        str(path),
        dynamo=False,
        opset_version=ONNX_OPSET,
        input_names=[ONNX_INPUT],
        output_names=[ONNX_OUTPUT],
        dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
    )
