"""Writes .safetensors fixtures with the real safetensors package (torch venv) for check_safetensors.c.

    $(tools/dev/torch-venv.sh) tests/py/safetensors_fixtures.py OUTDIR

OUTDIR/dtypes.safetensors   one tensor per dtype (F32 F16 BF16 F64 I32 I64 I16 I8 U8 BOOL) + metadata
OUTDIR/speaker.safetensors  a speaker written by tools/export/cosyvoice2/speakers.py save()
OUTDIR/empty.safetensors    no tensors, only metadata
OUTDIR/expected.json        for each file: metadata and, per tensor, dtype, shape and the values as the C
                            conversion must return them (floats as float32 via float.hex, ints as ints)
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "export"))
from cosyvoice2 import speakers  # noqa: E402

DT = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int32: "I32", torch.int64: "I64", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def describe(tensors, meta):
    out = {"metadata": meta, "tensors": {}}
    for name, t in tensors.items():
        d = {"dtype": DT[t.dtype], "shape": list(t.shape)}
        flat = t.reshape(-1)
        if t.dtype.is_floating_point:
            d["f32"] = [float(x).hex() for x in flat.to(torch.float32).tolist()]
        elif t.dtype != torch.bool:
            d["i32"] = [int(x) for x in flat.tolist()]
        out["tensors"][name] = d
    return out


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    special = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 6.0e-8, 1.0e-5, float("inf"), float("-inf"), 3.0e38])
    t = {
        "f32": torch.randn(3, 4, generator=g) * 10,
        "f16": torch.cat([special.to(torch.float16), (torch.randn(14, generator=g) * 100).to(torch.float16)]),
        "bf16": torch.cat([special.to(torch.bfloat16), torch.randn(6, generator=g).to(torch.bfloat16)]).reshape(2, 8),
        "f64": torch.randn(5, generator=g, dtype=torch.float64),
        "i32": torch.tensor([0, 1, -1, 2147483647, -2147483648, 6560], dtype=torch.int32),
        "i64": torch.tensor([[5, -7], [123456789, -2147483648]], dtype=torch.int64),
        "i16": torch.tensor([-32768, 0, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 5, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "nothing": torch.zeros(0, 80),
        "scalar": torch.tensor(2.5),
    }
    meta = {"format": "test", "note": "héllo ✓"}
    save_file(t, os.path.join(outdir, "dtypes.safetensors"), metadata=meta)
    expected = {"dtypes.safetensors": describe(t, meta)}

    sp = speakers.normalize(speakers.Speaker(
        name="说话人 A", prompt_text=torch.tensor([9707, 11, 151646], dtype=torch.int32),
        prompt_speech_tokens=torch.randint(0, 6561, (13,), generator=g, dtype=torch.int32),
        prompt_mel=torch.randn(27, 80, generator=g), embedding=torch.randn(192, generator=g), source="random",
        note="fixture"))
    path = os.path.join(outdir, "speaker.safetensors")
    speakers.save(sp, path)
    st = {"prompt_text": sp.prompt_text, "prompt_speech_tokens": sp.prompt_speech_tokens,
          "prompt_mel": sp.prompt_mel, "embedding": sp.embedding}
    expected["speaker.safetensors"] = describe(st, {"format": speakers.FORMAT,
                                                    "format_version": speakers.FORMAT_VERSION,
                                                    "name": sp.name, "source": sp.source, "note": sp.note})

    save_file({}, os.path.join(outdir, "empty.safetensors"), metadata={"a": "b"})
    expected["empty.safetensors"] = {"metadata": {"a": "b"}, "tensors": {}}
    with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
