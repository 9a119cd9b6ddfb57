"""A small safetensors reader/writer following the published format
(huggingface/safetensors README, "Format"), for tests: Debian has no python3-safetensors.

  8 bytes  N: little-endian unsigned 64-bit header size
  N bytes  JSON header {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}}
           (UTF-8, starts with '{', may be padded with spaces)
  rest     byte buffer; data_offsets [begin, end) are relative to it and the tensors
           cover it exactly (no holes, no overlaps); data is little-endian, row-major.
"""
import json
import struct

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
          "U64": np.uint64, "BOOL": np.bool_}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
MAX_HEADER = 100_000_000


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (written in dict order); metadata: dict str -> str."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        arr = np.array(arr, order="C", copy=True)  # (ascontiguousarray would turn 0-d into 1-d)
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> numpy array, metadata dict); raises ValueError on a malformed file."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER or 8 + n > len(buf):
        raise ValueError(f"bad header length {n}")
    text = buf[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        raise ValueError("header does not start with '{'")
    header = json.loads(text)
    data = buf[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("__metadata__ must map strings to strings")
    spans, out = [], {}
    for name, info in header.items():
        dt = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(x) for x in info["data_offsets"])
        if not 0 <= begin <= end <= len(data) or end - begin != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise ValueError(f"{name}: bad data_offsets {info['data_offsets']}")
        spans.append((begin, end, name))
        out[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            raise ValueError(f"{name}: offsets leave a hole or overlap at byte {at}")
        at = end
    if at != len(data):
        raise ValueError("trailing bytes after the last tensor")
    return out, metadata
