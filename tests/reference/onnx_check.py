"""Checks an ONNX file with the onnx package's own checker (full_check: also type and shape inference) and prints
what the tests assert on, as JSON: opset, IR version, inputs and outputs with their element types and dimensions
(a symbolic axis as its name), the op types used, and whether initializers live in external data.

usage: onnx_check.py MODEL.onnx
"""
import json
import sys

import onnx


def dims(value):
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


def main(path):
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    print(json.dumps({
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": {i.name: {"elem_type": i.type.tensor_type.elem_type, "dims": dims(i)} for i in graph.input},
        "outputs": {o.name: {"elem_type": o.type.tensor_type.elem_type, "dims": dims(o)} for o in graph.output},
        "op_types": sorted({n.op_type for n in graph.node}),
        "external_initializers": sum(1 for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL),
        "initializers": len(graph.initializer),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }))


if __name__ == "__main__":
    main(sys.argv[1])
