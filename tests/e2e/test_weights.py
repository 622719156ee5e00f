"""How the htp exporter reads a source's weights:
safetensors (single and sharded, with or without the safetensors package), pytorch_model.bin
only through torch.load(weights_only=True), every key checked, no weights = error.

The reader (tools/htp_weights.py) is called directly with this interpreter; the same files are
also read with the safetensors package in MODELEXPORT_VENV_PYTHON, by default the pinned
environment (MODELEXPORT_PYTHON), and both results must agree. Files are written by the small writer below."""
import json
import os
import pickle
import struct
import subprocess
import sys
import unittest

import torch

from common import EXIT, REPO, SOURCES, TempDirTest, run

TOOLS = os.path.join(REPO, "tools")
sys.path.insert(0, TOOLS)
import htp_weights  # noqa: E402
from htp_weights import WeightsError  # noqa: E402

EXPORTER = os.path.join(TOOLS, "htp_exporter.py")
PYTHON = os.environ.get("MODELEXPORT_PYTHON", sys.executable)
VENV_PYTHON = os.environ.get("MODELEXPORT_VENV_PYTHON") or os.environ.get("MODELEXPORT_PYTHON", "")
NO_VENV = "MODELEXPORT_VENV_PYTHON is not set to an interpreter with torch and the safetensors package"

DTYPE_NAMES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
               torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
               torch.bool: "BOOL"}


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: same bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """A safetensors file as the format describes it (header padded to 8 bytes like the package)."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        data = tensor_bytes(t)
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    write_raw_safetensors(path, json.dumps(header).encode(), b"".join(chunks))


def write_raw_safetensors(path, header_bytes, data, length=None):
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes) if length is None else length) + header_bytes + data)


def sample_tensors():
    g = torch.Generator().manual_seed(3)
    return {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).to(torch.bfloat16),
        "f64": torch.randn(2, generator=g).double(),
        "i64": torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4),
        "i32": torch.tensor([1, -2, 3], dtype=torch.int32),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


def describe(tensors):
    """JSON-able view of tensors, to compare results across interpreters."""
    return {k: [str(t.dtype), list(t.shape), t.float().flatten().tolist()] for k, t in sorted(tensors.items())}


def run_in_venv(code, *args):
    p = subprocess.run([VENV_PYTHON, "-c", code, TOOLS, *args], capture_output=True, text=True, timeout=300)
    if p.returncode:
        raise AssertionError(f"{VENV_PYTHON} failed: {p.stderr}")
    return p.stdout


VENV_READ = """import json, sys
sys.path.insert(0, sys.argv[1])
import safetensors.torch, htp_weights
try:
    t = htp_weights.read_safetensors(sys.argv[2], sys.argv[2])
    print(json.dumps({k: [str(v.dtype), list(v.shape), v.float().flatten().tolist()] for k, v in sorted(t.items())}))
except htp_weights.WeightsError as e:
    print(json.dumps({"error": str(e)}))
"""
VENV_WRITE = """import sys, torch, safetensors.torch
sys.path.insert(0, sys.argv[1])
safetensors.torch.save_file({"f32": torch.arange(6.0).reshape(2, 3), "bf16": torch.tensor([1.5, -2.0]).to(torch.bfloat16),
                             "f16": torch.tensor([0.25], dtype=torch.float16), "i64": torch.tensor([7, -7])}, sys.argv[2])
"""


class TiedModel(torch.nn.Module):
    """A tiny language model whose lm_head is tied to the embeddings, as Hugging Face ties them."""

    def __init__(self, tie=True):
        super().__init__()
        self.embed = torch.nn.Embedding(5, 3)
        self.lm_head = torch.nn.Linear(3, 5, bias=False)
        self.register_buffer("scale", torch.ones(1), persistent=False)  # never in files
        if tie:
            self.lm_head.weight = self.embed.weight


def proves_payload_runs(test, payload_file, marker):
    """The malicious file really runs code under a plain pickle.load (so refusing it means something)."""
    with open(payload_file, "rb") as f:
        pickle.load(f).close()
    test.assertTrue(os.path.exists(marker))
    os.remove(marker)


class MakesMarker:
    """Unpickling this creates a marker file: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class SafetensorsReader(TempDirTest):
    def test_hand_reader_round_trips_every_dtype(self):
        tensors = sample_tensors()
        path = self.path("model.safetensors")
        write_safetensors(path, tensors, metadata={"format": "pt"})
        read = htp_weights.read_safetensors_by_hand(path, path)
        self.assertEqual(sorted(read), sorted(tensors))
        for name, t in tensors.items():
            self.assertEqual(read[name].dtype, t.dtype, name)
            self.assertTrue(torch.equal(read[name], t), name)

    def test_hand_reader_tensors_never_write_to_the_file(self):
        path = self.path("model.safetensors")
        write_safetensors(path, {"w": torch.zeros(4)})
        before = read_bytes(path)
        htp_weights.read_safetensors_by_hand(path, path)["w"].fill_(7.0)
        self.assertEqual(read_bytes(path), before)

    def test_unaligned_data_is_read_correctly(self):
        a, b = torch.tensor([1, 2, 3], dtype=torch.int8), torch.tensor([1.5, -2.5])
        header = {"a": {"dtype": "I8", "shape": [3], "data_offsets": [0, 3]},
                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [3, 11]}}
        path = self.path("model.safetensors")
        write_raw_safetensors(path, json.dumps(header).encode(), tensor_bytes(a) + tensor_bytes(b))
        read = htp_weights.read_safetensors_by_hand(path, path)
        self.assertTrue(torch.equal(read["b"], b))

    @unittest.skipUnless(VENV_PYTHON, NO_VENV)
    def test_package_reader_agrees_with_the_hand_reader(self):
        path = self.path("model.safetensors")
        write_safetensors(path, sample_tensors())
        by_hand = describe(htp_weights.read_safetensors_by_hand(path, path))
        self.assertEqual(json.loads(run_in_venv(VENV_READ, path)), json.loads(json.dumps(by_hand)))

    @unittest.skipUnless(VENV_PYTHON, NO_VENV)
    def test_hand_reader_reads_files_the_package_writes(self):
        path = self.path("model.safetensors")
        run_in_venv(VENV_WRITE, path)
        read = htp_weights.read_safetensors_by_hand(path, path)
        self.assertTrue(torch.equal(read["f32"], torch.arange(6.0).reshape(2, 3)))
        self.assertTrue(torch.equal(read["bf16"], torch.tensor([1.5, -2.0]).to(torch.bfloat16)))
        self.assertTrue(torch.equal(read["f16"], torch.tensor([0.25], dtype=torch.float16)))
        self.assertTrue(torch.equal(read["i64"], torch.tensor([7, -7])))

    LIES = [
        # name, file bytes, fragment of the error
        ("too_short", lambda: b"\x08\x00\x00", "too short"),
        ("huge_header_length", lambda: struct.pack("<Q", 1 << 40) + b"{}", "more than the"),
        ("header_past_the_end", lambda: struct.pack("<Q", 64) + b"{}", "runs past the end"),
        ("header_not_json", lambda: raw(b"{not json"), "not valid JSON"),
        ("header_not_utf8", lambda: raw(b'{"\xff": 1}'), "not valid JSON"),
        ("header_an_array", lambda: raw(b"[1, 2]"), "not a JSON object"),
        ("duplicate_tensor", lambda: raw(b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
                                         b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"x"), "duplicate key"),
        ("unknown_dtype", lambda: entry("Q8", [1], [0, 1], b"x"), "unknown dtype 'Q8'"),
        ("shape_negative", lambda: entry("U8", [-1], [0, 1], b"x"), "not a list of sizes"),
        ("shape_not_list", lambda: entry("U8", "1", [0, 1], b"x"), "not a list of sizes"),
        ("offsets_reversed", lambda: entry("U8", [0], [1, 0], b"x"), "outside"),
        ("offsets_past_data", lambda: entry("F32", [4], [0, 16], b"\0" * 8), "outside the 8 byte data area"),
        ("size_lies_about_shape", lambda: entry("F32", [4], [0, 8], b"\0" * 8), "needs 16"),
        ("offsets_not_pair", lambda: entry("U8", [1], [0], b"x"), "not [begin, end]"),
        ("entry_not_object", lambda: raw(b'{"a": 3}'), "not a JSON object"),
        ("metadata_not_object", lambda: raw(b'{"__metadata__": [1]}'), "__metadata__"),
    ]

    def test_lying_or_truncated_headers_give_one_clean_error(self):
        for name, content, fragment in self.LIES:
            with self.subTest(name):
                path = self.path(name + ".safetensors")
                write_bytes(path, content())
                with self.assertRaises(WeightsError) as caught:
                    htp_weights.read_safetensors_by_hand(path, path)
                message = str(caught.exception)
                self.assertTrue(message.startswith(path + ": "), message)
                self.assertIn(fragment, message)
                self.assertNotIn("\n", message)

    @unittest.skipUnless(VENV_PYTHON, NO_VENV)
    def test_lying_headers_are_errors_with_the_package_too(self):
        for name, content, _ in self.LIES:
            with self.subTest(name):
                path = self.path(name + ".safetensors")
                write_bytes(path, content())
                result = json.loads(run_in_venv(VENV_READ, path))
                self.assertIn("error", result, f"the safetensors package accepted {name}")
                self.assertTrue(result["error"].startswith(path + ": "), result)


def raw(header, data=b""):
    return struct.pack("<Q", len(header)) + header + data


def entry(dtype, shape, offsets, data):
    return raw(json.dumps({"a": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}).encode(), data)


class Layouts(TempDirTest):
    def source(self):
        src = self.path("src")
        os.makedirs(src, exist_ok=True)
        return src

    def assertReads(self, src, expected):
        state, _ = htp_weights.read_state_dict(src)
        self.assertEqual(sorted(state), sorted(expected))
        for k, t in expected.items():
            self.assertTrue(torch.equal(state[k], t), k)

    def assertRefused(self, src, *fragments):
        with self.assertRaises(WeightsError) as caught:
            htp_weights.read_state_dict(src)
        for f in fragments:
            self.assertIn(f, str(caught.exception))
        return caught.exception

    def test_safetensors_is_preferred_over_pytorch_model_bin(self):
        src = self.source()
        write_safetensors(os.path.join(src, "model.safetensors"), {"w": torch.ones(2)})
        torch.save({"w": torch.zeros(2)}, os.path.join(src, "pytorch_model.bin"))
        self.assertReads(src, {"w": torch.ones(2)})

    def test_sharded_safetensors(self):
        src = self.source()
        write_safetensors(os.path.join(src, "model-00001-of-00002.safetensors"), {"a": torch.ones(2), "b": torch.arange(3)})
        write_safetensors(os.path.join(src, "model-00002-of-00002.safetensors"), {"c": torch.tensor([2.0]).half()})
        self.write_index(src, "model.safetensors.index.json", {"a": "model-00001-of-00002.safetensors",
                                                               "b": "model-00001-of-00002.safetensors",
                                                               "c": "model-00002-of-00002.safetensors"})
        self.assertReads(src, {"a": torch.ones(2), "b": torch.arange(3), "c": torch.tensor([2.0]).half()})

    def test_sharded_pytorch_model_bin(self):
        src = self.source()
        torch.save({"a": torch.ones(2)}, os.path.join(src, "pytorch_model-00001-of-00002.bin"))
        torch.save({"b": torch.zeros(1)}, os.path.join(src, "pytorch_model-00002-of-00002.bin"))
        self.write_index(src, "pytorch_model.bin.index.json", {"a": "pytorch_model-00001-of-00002.bin",
                                                               "b": "pytorch_model-00002-of-00002.bin"})
        self.assertReads(src, {"a": torch.ones(2), "b": torch.zeros(1)})

    def test_index_naming_a_tensor_its_shard_lacks(self):
        src = self.source()
        write_safetensors(os.path.join(src, "s1.safetensors"), {"a": torch.ones(2)})
        self.write_index(src, "model.safetensors.index.json", {"a": "s1.safetensors", "ghost": "s1.safetensors"})
        self.assertRefused(src, "model.safetensors.index.json", "'ghost'", "does not hold it")

    def test_index_shard_names_leaving_the_source_are_refused_before_opening(self):
        for name in ("/etc/passwd", "../outside.safetensors", "sub/../../outside.safetensors", "..\\outside.safetensors"):
            with self.subTest(name):
                src = self.source()
                self.write_index(src, "model.safetensors.index.json", {"a": name})
                self.assertRefused(src, "model.safetensors.index.json", "only relative names without '..'")

    def test_pytorch_model_bin_is_read_with_weights_only(self):
        src = self.source()
        torch.save({"w": torch.arange(4)}, os.path.join(src, "pytorch_model.bin"))
        self.assertReads(src, {"w": torch.arange(4)})

    def test_malicious_pickles_are_refused_and_never_run(self):
        marker = self.path("pwned")
        payloads = {"plain pickle": lambda p: write_bytes(p, pickle.dumps(MakesMarker(marker))),
                    "torch.save zip": lambda p: torch.save({"w": MakesMarker(marker)}, p)}
        for how, write in payloads.items():
            with self.subTest(how):
                src = self.source()
                path = os.path.join(src, "pytorch_model.bin")
                write(path)
                if how == "plain pickle":
                    proves_payload_runs(self, path, marker)
                self.assertRefused(src, path, "torch.load(weights_only=True) cannot read it")
                self.assertFalse(os.path.exists(marker), "the pickle ran code")

    def test_a_bin_holding_something_else_than_tensors(self):
        src = self.source()
        torch.save([torch.ones(1)], os.path.join(src, "pytorch_model.bin"))
        self.assertRefused(src, "does not hold a dict of named tensors")

    def test_weights_linking_out_of_the_source_are_refused(self):
        outside = self.path("outside.safetensors")
        write_safetensors(outside, {"w": torch.ones(1)})
        src = self.source()
        os.symlink(outside, os.path.join(src, "model.safetensors"))
        self.assertRefused(src, os.path.join(src, "model.safetensors"), "links outside")
        # ...unless the boundary (the Hub cache repository folder) holds the target.
        state, _ = htp_weights.read_state_dict(src, boundary=self.tmp)
        self.assertEqual(list(state), ["w"])

    def test_a_shard_linking_out_of_the_source_is_refused(self):
        outside = self.path("outside.safetensors")
        write_safetensors(outside, {"a": torch.ones(1)})
        src = self.source()
        os.symlink(outside, os.path.join(src, "s1.safetensors"))
        self.write_index(src, "model.safetensors.index.json", {"a": "s1.safetensors"})
        self.assertRefused(src, "s1.safetensors", "links outside")

    def test_a_link_inside_the_source_is_fine(self):
        src = self.source()
        os.makedirs(os.path.join(src, "blobs"))
        write_safetensors(os.path.join(src, "blobs", "abc"), {"w": torch.ones(1)})
        os.symlink(os.path.join("blobs", "abc"), os.path.join(src, "model.safetensors"))
        self.assertReads(src, {"w": torch.ones(1)})

    def test_special_files_are_refused_without_blocking(self):
        src = self.source()
        os.mkfifo(os.path.join(src, "model.safetensors"))
        self.assertRefused(src, "is not a regular file")

    def test_a_broken_weights_link_is_an_error_not_a_fallback(self):
        src = self.source()
        os.symlink("missing.safetensors", os.path.join(src, "model.safetensors"))
        torch.save({"w": torch.zeros(1)}, os.path.join(src, "pytorch_model.bin"))
        self.assertRefused(src, "model.safetensors", "cannot be read")

    def test_no_weights_names_the_source_and_the_files_looked_for(self):
        src = self.source()
        error = self.assertRefused(src, src, "no weights file")
        for name in htp_weights.LAYOUTS:
            self.assertIn(name, str(error))

    def write_index(self, src, name, weight_map):
        with open(os.path.join(src, name), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)


class Keys(TempDirTest):
    def load(self, model, tensors):
        src = self.path("src")
        os.makedirs(src, exist_ok=True)
        write_safetensors(os.path.join(src, "model.safetensors"), tensors)
        htp_weights.load_weights(model, src)
        return model

    def test_a_tied_lm_head_may_be_omitted(self):
        embed = torch.arange(15.0).reshape(5, 3)
        model = self.load(TiedModel(), {"embed.weight": embed})
        self.assertTrue(torch.equal(model.lm_head.weight, embed))

    def test_an_untied_lm_head_must_be_there(self):
        with self.assertRaises(WeightsError) as caught:
            self.load(TiedModel(tie=False), {"embed.weight": torch.zeros(5, 3)})
        self.assertIn("1 tensor of the model missing: lm_head.weight", str(caught.exception))

    def test_missing_keys_are_named_with_a_count(self):
        model = torch.nn.Sequential(*[torch.nn.Linear(1, 1) for _ in range(4)])
        with self.assertRaises(WeightsError) as caught:
            self.load(model, {"0.weight": torch.zeros(1, 1)})
        message = str(caught.exception)
        self.assertIn("7 tensors of the model missing: 0.bias, 1.bias, 1.weight, 2.bias, 2.weight and 2 more", message)
        self.assertIn("model.safetensors: ", message)

    def test_unexpected_keys_are_named(self):
        with self.assertRaises(WeightsError) as caught:
            self.load(TiedModel(), {"embed.weight": torch.zeros(5, 3), "extra.bias": torch.zeros(1)})
        self.assertIn("1 tensor not in the model: extra.bias", str(caught.exception))

    def test_a_wrong_shape_names_file_and_key(self):
        with self.assertRaises(WeightsError) as caught:
            self.load(TiedModel(), {"embed.weight": torch.zeros(4, 3)})
        self.assertIn("'embed.weight' has shape [4, 3], the model needs [5, 3]", str(caught.exception))


def convert_to_safetensors(src, omit=()):
    """Replaces a fixture's pytorch_model.bin with model.safetensors holding the same tensors."""
    path = os.path.join(src, "pytorch_model.bin")
    state = torch.load(path, map_location="cpu", weights_only=True)
    os.remove(path)
    write_safetensors(os.path.join(src, "model.safetensors"), {k: v for k, v in state.items() if k not in omit})


class Exporter(TempDirTest):
    """The exporter script and the built tool on fixtures whose weights were converted."""

    def exporter(self, src, *extra, python=PYTHON):
        return subprocess.run([python, EXPORTER, "--source", src, "--task", "fill-mask", "--onnx", self.path("m.onnx"),
                               "--modules", self.path("m.json"), "--model", "modeling.py:build", *extra],
                              capture_output=True, text=True, timeout=600, cwd="/")

    def test_modelexport_export_of_safetensors_matches_the_bin_export(self):
        src = self.copy_source("text-classification")
        convert_to_safetensors(src)
        run("export", src, self.path("st"), "--model", "modeling.py:build", check=0)
        run("export", os.path.join(SOURCES, "text-classification"), self.path("bin"), "--model", "modeling.py:build",
            check=0)
        with open(self.path("st", "model.onnx"), "rb") as a, open(self.path("bin", "model.onnx"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "same weights, different ONNX")

    def test_tied_decoder_omitted_as_hugging_face_saves_it(self):
        src = self.copy_source("fill-mask")
        convert_to_safetensors(src, omit={"cls.predictions.decoder.weight"})
        p = self.exporter(src)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_no_weights_is_an_error_unless_random_weights(self):
        src = self.copy_source("fill-mask")
        os.remove(os.path.join(src, "pytorch_model.bin"))
        p = self.exporter(src)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stderr.strip().splitlines()[-1],
                         f"htp_exporter: error: {src}: no weights file (looked for {', '.join(htp_weights.LAYOUTS)})")
        self.assertNotIn("Traceback", p.stderr)
        p = self.exporter(src, "--random-weights")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_an_exception_without_a_message_is_named_by_its_type_and_place(self):
        """A bare assert (torch's exporter has them) must not end in an empty 'error:' line."""
        src = self.copy_source("fill-mask")
        os.remove(os.path.join(src, "pytorch_model.bin"))
        with open(os.path.join(src, "asserting.py"), "w") as f:
            f.write("import torch\n\n\nclass Asserting(torch.nn.Module):\n"
                    "    def __init__(self):\n        super().__init__()\n        self.linear = torch.nn.Linear(2, 2)\n\n"
                    "    def forward(self, input_ids, attention_mask=None):\n        assert input_ids.shape[0] < 0\n"
                    "        return self.linear(attention_mask.float())\n\n\n"
                    "def build(config):\n    return Asserting()\n")
        p = self.exporter(src, "--model", "asserting.py:build", "--random-weights")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stderr.strip().splitlines()[-1],
                         "htp_exporter: error: AssertionError in forward (asserting.py line 10), without a message")

    def test_modelexport_reports_the_missing_weights(self):
        src = self.copy_source("text-classification")
        os.remove(os.path.join(src, "pytorch_model.bin"))
        p = run("export", src, self.path("pkg"), "--model", "modeling.py:build")
        self.assertEqual(p.returncode, EXIT["export_failed"], p.stderr)
        self.assertIn("no weights file", p.stderr)
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_malicious_pytorch_model_bin_never_runs(self):
        src = self.copy_source("fill-mask")
        marker = self.path("pwned")
        torch.save({"w": MakesMarker(marker)}, os.path.join(src, "pytorch_model.bin"))
        p = self.exporter(src)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("torch.load(weights_only=True) cannot read it", p.stderr)
        self.assertFalse(os.path.exists(marker))

    @unittest.skipUnless(VENV_PYTHON, NO_VENV)
    def test_exporter_reads_safetensors_with_the_package(self):
        src = self.copy_source("fill-mask")
        convert_to_safetensors(src, omit={"cls.predictions.decoder.weight"})
        p = self.exporter(src, python=VENV_PYTHON)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
