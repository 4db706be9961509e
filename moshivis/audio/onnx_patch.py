"""Expose an intermediate tensor of an ONNX model as an extra graph output, without the `onnx` package.

Piper's VITS voices compute `w_ceil` (a `Ceil` node): the number of decoder frames given to each phoneme id.
Marking it as a graph output gives exact phoneme durations (frames x hop_length samples) for the very audio
that was synthesised. piper-tts does this through the `onnx` package, which this project does not install;
an ONNX file is a protobuf `ModelProto`, and adding an output only means appending one small field, so the
few lines of protobuf wire format needed are done here by hand.

Wire format facts used (protobuf encoding spec): a field is `key = (number << 3) | wire_type` as a varint,
then a varint (type 0), 8 bytes (1), a varint length + bytes (2) or 4 bytes (5). Repeated fields may be
appended anywhere. ONNX numbers: ModelProto.graph = 7; GraphProto.node = 1, .output = 12;
NodeProto.output = 2, .op_type = 4; ValueInfoProto.name = 1.
"""

from __future__ import annotations

from collections.abc import Iterator

_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_OUTPUT = 1, 12
_NODE_OUTPUT, _NODE_OP_TYPE = 2, 4
_VALUE_INFO_NAME = 1


def _read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        if value < 0x80:
            out.append(value)
            return bytes(out)
        out.append((value & 0x7F) | 0x80)
        value >>= 7


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int, int, int]]:
    """(number, wire_type, field_start, payload_start, payload_end) of each top-level field of a message."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _read_varint(buf, pos)
        elif wire == 1:
            end = pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            end = pos + length
        elif wire == 5:
            end = pos + 4
        else:  # groups (3/4) are not used by ONNX
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {start}")
        yield number, wire, start, pos, end
        pos = end


def _length_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def find_op_outputs(model: bytes, op_type: str) -> list[str]:
    """Names of the outputs of every top-level graph node whose op_type is `op_type`."""
    view = memoryview(model)
    names: list[str] = []
    for number, wire, _, lo, hi in _fields(view):
        if number != _MODEL_GRAPH or wire != 2:
            continue
        graph = view[lo:hi]
        for g_number, g_wire, _, g_lo, g_hi in _fields(graph):
            if g_number != _GRAPH_NODE or g_wire != 2:
                continue
            node = graph[g_lo:g_hi]
            op, outs = "", []
            for n_number, _, _, n_lo, n_hi in _fields(node):
                if n_number == _NODE_OP_TYPE:
                    op = bytes(node[n_lo:n_hi]).decode()
                elif n_number == _NODE_OUTPUT:
                    outs.append(bytes(node[n_lo:n_hi]).decode())
            if op == op_type:
                names.extend(outs)
    return names


def add_graph_output(model: bytes, tensor_name: str) -> bytes:
    """The serialised model with `tensor_name` appended to the graph outputs (type left to inference,
    which onnxruntime accepts)."""
    view = memoryview(model)
    for number, wire, start, lo, hi in _fields(view):
        if number == _MODEL_GRAPH and wire == 2:
            extra = _length_field(_GRAPH_OUTPUT, _length_field(_VALUE_INFO_NAME, tensor_name.encode()))
            graph = bytes(view[lo:hi]) + extra
            return bytes(view[:start]) + _length_field(_MODEL_GRAPH, graph) + bytes(view[hi:])
    raise ValueError("not an ONNX model: no graph field")
