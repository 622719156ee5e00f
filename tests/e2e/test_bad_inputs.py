"""Bad-input corpus: every malformed, hostile or unlucky input gets the
documented exit code and exactly one `modelexport: error:` line naming the
offending file (or id) and the problem; a failed export leaves no package and
no staging directory behind; `validate` turns a broken package into failed
checks with stable ids (exit 7), never a crash.

The cases are tables. Each row is (name, builder, expected exit, ...): the
builder prepares the input in a fresh temporary directory and returns the
command line and the fragments the error line must contain. One test method is
generated per row so a failure names its case.
"""
import json
import os
import random
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common import EXAMPLES, EXIT, NODE, RUNTIME_DIR, SOURCES, TOOL, TempDirTest, load_json, run, tree_snapshot

TEXT = os.path.join(SOURCES, "text-classification")              # htp source (modeling.py + pytorch_model.bin)
PREBUILT = "text-classification-prebuilt"                          # onnx/model.onnx + config + tokenizer files
MIB = 1 << 20


# --------------------------------------------------------------------------- helpers

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def example_model(name="text-classification"):
    return onnx.load(os.path.join(EXAMPLES, name, "model.onnx"))


def tiny_model(nodes, inputs=("x",), outputs=("y",), initializers=()):
    """A small float graph with the given nodes (for graph-level defects)."""
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(nodes, "bad", [vi(i) for i in inputs], [vi(o) for o in outputs], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def cyclic_model():
    # a = Add(x, c); c = Relu(a); y = Identity(a): a <-> c is a cycle.
    return tiny_model([helper.make_node("Add", ["x", "c"], ["a"], name="/cycle/Add"),
                       helper.make_node("Relu", ["a"], ["c"], name="/cycle/Relu"),
                       helper.make_node("Identity", ["a"], ["y"], name="/out/Identity")])


def undefined_input_model():
    return tiny_model([helper.make_node("Add", ["x", "ghost"], ["y"], name="/ghost/Add")])


def externalize(model, location, offset="0", length=None, data_dir=None, data_name=None, short_by=0):
    """Moves the largest initializer of `model` to external data at `location`
    (writing the bytes to data_dir/data_name when given, `short_by` bytes short)."""
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    raw = big.raw_data
    big.data_location = TensorProto.EXTERNAL
    del big.external_data[:]
    for k, v in (("location", location), ("offset", offset), ("length", str(len(raw)) if length is None else length)):
        e = big.external_data.add()
        e.key, e.value = k, v
    big.ClearField("raw_data")
    if data_dir is not None:
        write(os.path.join(data_dir, data_name or location), raw[: len(raw) - short_by])
    return model


def fake_exporter_arguments():
    return ("import argparse, os, sys, time\n"
            "ap = argparse.ArgumentParser()\n"
            "for a in ('--source', '--task', '--onnx', '--modules', '--model', '--opset'): ap.add_argument(a)\n"
            "a = ap.parse_args()\n")


def can_mount():
    """Mounting a tmpfs needs CAP_SYS_ADMIN (root in a container that allows it)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    d = tempfile.mkdtemp(prefix="modelexport-mnt-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok
    finally:
        os.rmdir(d)


MOUNT_OK = can_mount()
NO_MOUNT = "mounting a tmpfs or a read-only bind mount is not permitted here (needs root with CAP_SYS_ADMIN); " \
           "as root, permission bits alone do not stop writes"


class Table(TempDirTest):
    """Base: runs one table row, checks code, the single error line and leftovers."""
    CASES = []

    def src(self, name=PREBUILT):
        return self.copy_source(name, self.path("src-" + name))

    def check_row(self, builder, code):
        spec = builder(self)
        args, fragments = spec[0], spec[1]
        env = spec[2] if len(spec) > 2 else None
        out_existed = args[0] == "export" and os.path.lexists(str(args[2]))
        before = tree_snapshot(self.tmp)
        start = time.monotonic()
        p = run(*args, env=env, timeout=300)
        self.assertLess(time.monotonic() - start, 60, "a bad input must fail fast (hung exporters within --timeout)")
        self.assertFailsWith(p, code, *fragments)
        line = next(l for l in p.stderr.splitlines() if l.startswith("modelexport: error: "))
        self.assertNotIn("internal", line)
        self.assertLess(len(line), 64 << 10, "the error line quotes an unbounded amount of the input")
        # the error is one printable line: no terminal escapes, carriage returns or NULs from the input
        self.assertFalse(any(ord(c) < 0x20 and c != "\n" for c in p.stderr), repr(p.stderr))
        if args[0] == "export":
            out = str(args[2])
            parent = os.path.dirname(os.path.abspath(out))
            if os.path.isdir(parent):
                leftovers = [n for n in os.listdir(parent) if ".staging-" in n]
                self.assertEqual(leftovers, [], "staging directory left behind")
            if not out_existed:
                self.assertFalse(os.path.lexists(out), "a failed export left a package behind")
        # Nothing changed anywhere: no package, temporary file, header or lock left, no input touched.
        ignored = getattr(self, "written_by_test_code", set())
        after = {k: v for k, v in tree_snapshot(self.tmp).items() if k not in ignored}
        self.assertEqual(after, before, "a failed command changed files")
        return p

    @classmethod
    def generate(cls):
        for name, builder, code in cls.CASES:
            def test(self, builder=builder, code=code):
                self.check_row(builder, code)
            test.__name__ = "test_" + name
            test.__doc__ = f"{name}: exit {code}"
            setattr(cls, test.__name__, test)
        return cls


def export_args(src, out, *extra):
    return ["export", src, out, *extra]


# --------------------------------------------------------------------------- config.json

def config_case(data, *fragments):
    """config.json of a prebuilt source replaced by `data` (None: removed)."""
    def build(t):
        src = t.src()
        path = os.path.join(src, "config.json")
        os.remove(path)
        if data is not None:
            write(path, data(t) if callable(data) else data)
        return export_args(src, t.path("pkg")), [path if data is not None else src, *fragments]
    return build


def deep(n):
    return "[" * n + "]" * n


class BadConfig(Table):
    CASES = [
        ("config_missing", config_case(None, "config.json required"), "config_missing"),
        ("config_empty", config_case(b"", "invalid JSON at byte 1"), "invalid_input"),
        ("config_id2label_key_not_an_int", config_case('{"model_type": "bert", "architectures": ["BertForSequenceClassification"], '
                                                       '"id2label": {"0": "N", " 1 ": "P", "abc": "Q"}}',
                                                       "id2label key 'abc' is not an integer"), "invalid_input"),
        ("config_whitespace_only", config_case(b"  \n\t ", "invalid JSON"), "invalid_input"),
        ("config_array_not_object", config_case('[{"model_type": "bert"}]', "expected a JSON object, found array"), "invalid_input"),
        ("config_string_not_object", config_case('"bert"', "expected a JSON object, found string"), "invalid_input"),
        ("config_null", config_case("null", "expected a JSON object, found null"), "invalid_input"),
        ("config_huge", config_case(lambda t: '{"model_type": "bert", "pad": "' + "x" * (16 * MIB + 10) + '"}',
                                    "larger than 16777216 bytes"), "invalid_input"),
        ("config_nested_100000", config_case('{"model_type": "bert", "a": ' + deep(100000) + "}",
                                             "nesting deeper than 64 levels"), "invalid_input"),
        ("config_nested_objects", config_case('{"model_type": "bert", "a": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
                                              "nesting deeper than 64 levels"), "invalid_input"),
        ("config_invalid_utf8", config_case(b'{"model_type": "bert", "name": "\xff\xfe\xc3("}', "invalid JSON", "UTF-8"),
         "invalid_input"),
        ("config_duplicate_key", config_case('{"model_type": "bert", "architectures": ["BertForSequenceClassification"], '
                                             '"model_type": "gpt2"}', 'duplicate key "model_type"'), "invalid_input"),
        ("config_truncated", config_case('{"model_type": "bert", "architectures": ["Bert', "invalid JSON"), "invalid_input"),
        ("config_trailing_garbage", config_case('{"model_type": "bert"} {}', "invalid JSON"), "invalid_input"),
        ("config_no_model_type", config_case('{"architectures": ["BertForSequenceClassification"]}', 'no "model_type" string'),
         "invalid_input"),
        ("config_model_type_not_string", config_case('{"model_type": 7, "architectures": ["BertForSequenceClassification"]}',
                                                     'no "model_type" string'), "invalid_input"),
        ("config_model_type_empty", config_case('{"model_type": "", "architectures": ["BertForSequenceClassification"]}',
                                                'no "model_type" string'), "invalid_input"),
        ("config_no_architectures", config_case('{"model_type": "bert"}', 'cannot infer the task from "architectures"'),
         "invalid_input"),
        # What Python's json (as transformers calls it) rejects is rejected.
        ("config_utf8_bom", config_case(b'\xef\xbb\xbf{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}',
                                        "byte order mark"), "invalid_input"),
        ("config_nan_refused", config_case('{"model_type": "bert", "architectures": ["BertForSequenceClassification"], "x": NaN}',
                                           "invalid JSON"), "invalid_input"),
    ]

    def test_config_is_a_directory(self):
        src = self.src()
        os.remove(os.path.join(src, "config.json"))
        os.mkdir(os.path.join(src, "config.json"))
        self.check_row(lambda t: (export_args(src, t.path("pkg")), [os.path.join(src, "config.json"), "not a regular file"]),
                       "invalid_input")

    def test_config_is_a_link_out_of_the_source(self):
        src = self.src()
        outside = write(self.path("outside", "config.json"), '{"model_type": "bert"}')
        os.remove(os.path.join(src, "config.json"))
        os.symlink(outside, os.path.join(src, "config.json"))
        self.check_row(lambda t: (export_args(src, t.path("pkg")), [os.path.join(src, "config.json"), "links outside"]),
                       "invalid_input")

    def test_config_is_a_broken_link(self):
        src = self.src()
        os.remove(os.path.join(src, "config.json"))
        os.symlink("no-such-file.json", os.path.join(src, "config.json"))
        self.check_row(lambda t: (export_args(src, t.path("pkg")), [os.path.join(src, "config.json"), "broken link"]),
                       "invalid_input")


# --------------------------------------------------------------------------- model.onnx (prebuilt)

def random_bytes(n, seed=8):
    return random.Random(seed).randbytes(n)


def truncated(t):
    data = read(os.path.join(SOURCES, PREBUILT, "onnx", "model.onnx"))
    return data[: len(data) // 3]


def model_case(data, *fragments, extra=()):
    """The source's onnx/model.onnx replaced by model.onnx at the top (bytes or a ModelProto)."""
    def build(t):
        src = t.src()
        shutil.rmtree(os.path.join(src, "onnx"))
        path = os.path.join(src, "model.onnx")
        value = data(t, src) if callable(data) else data
        if isinstance(value, onnx.ModelProto):
            onnx.save(value, path)
        else:
            write(path, value)
        return export_args(src, t.path("pkg"), *extra), [path, *fragments]
    return build


def external(location_fn, **kw):
    def make(t, src):
        location = location_fn(t, src)
        return externalize(example_model(), location, **{k: (v(t, src) if callable(v) else v) for k, v in kw.items()})
    return make


class BadModel(Table):
    CASES = [
        ("onnx_truncated", model_case(lambda t, s: truncated(t), "not a valid ONNX model"), "invalid_input"),
        ("onnx_empty", model_case(b"", "not an ONNX model (no graph)"), "invalid_input"),
        ("onnx_random_bytes", model_case(random_bytes(4096), "ONNX model"), "invalid_input"),
        ("onnx_wrong_magic_zip", model_case(b"PK\x03\x04" + random_bytes(2000, 3), "ONNX model"), "invalid_input"),
        ("onnx_wrong_magic_text", model_case(b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 12\n",
                                             "ONNX model"), "invalid_input"),
        ("onnx_no_graph", model_case(lambda t, s: onnx.ModelProto(ir_version=8, producer_name="x"), "no graph"),
         "invalid_input"),
        ("onnx_cycle", model_case(lambda t, s: cyclic_model(), "ONNX checker"), "invalid_input"),
        ("onnx_undefined_input", model_case(lambda t, s: undefined_input_model(), "ONNX checker", "ghost"), "invalid_input"),
        ("onnx_external_parent_dir", model_case(external(lambda t, s: "../weights.bin"), "points outside the package: ../weights.bin"),
         "invalid_input"),
        ("onnx_external_absolute", model_case(external(lambda t, s: t.path("weights.bin"), data_dir=lambda t, s: "/",
                                                       data_name=lambda t, s: t.path("weights.bin").lstrip("/")),
                                              "points at an absolute path"), "invalid_input"),
        ("onnx_external_missing_file", model_case(external(lambda t, s: "model.onnx_data"), "needs missing file model.onnx_data"),
         "invalid_input"),
        ("onnx_external_short_file", model_case(external(lambda t, s: "model.onnx_data", data_dir=lambda t, s: s, short_by=7),
                                                "reads bytes", "model.onnx_data"), "invalid_input"),
        ("onnx_external_bad_offset", model_case(external(lambda t, s: "model.onnx_data", data_dir=lambda t, s: s, offset="twelve"),
                                                "offset"), "invalid_input"),
    ]

    def test_onnx_data_linking_out_of_the_source_is_refused(self):
        src = self.src()
        shutil.rmtree(os.path.join(src, "onnx"))
        onnx.save(externalize(example_model(), "model.onnx_data", data_dir=self.path("secret")), os.path.join(src, "model.onnx"))
        os.symlink(self.path("secret", "model.onnx_data"), os.path.join(src, "model.onnx_data"))
        self.check_row(lambda t: (export_args(src, t.path("pkg")), [os.path.join(src, "model.onnx_data"), "links outside"]),
                       "invalid_input")

    def test_onnx_file_option_leaving_the_source(self):
        src = self.src()
        shutil.copy(os.path.join(src, "onnx", "model.onnx"), self.path("elsewhere.onnx"))
        for name in ("../elsewhere.onnx", self.path("elsewhere.onnx"), "onnx/../../elsewhere.onnx"):
            with self.subTest(name):
                self.check_row(lambda t: (export_args(src, t.path("pkg"), "--strategy", "prebuilt", "--onnx-file", name),
                                          ["--onnx-file", name, "relative path without '..'"]), "usage")

    def test_model_onnx_is_a_directory(self):
        src = self.src()
        shutil.rmtree(os.path.join(src, "onnx"))
        os.mkdir(os.path.join(src, "model.onnx"))
        self.check_row(lambda t: (export_args(src, t.path("pkg"), "--strategy", "prebuilt"),
                                  [os.path.join(src, "model.onnx"), "not a regular file"]), "invalid_input")


# --------------------------------------------------------------------------- tokenizer files, Hub ids, the cache

def link_out(name, target_fn):
    def build(t):
        src = t.src()
        target = target_fn(t)
        os.remove(os.path.join(src, name))
        os.symlink(target, os.path.join(src, name))
        return export_args(src, t.path("pkg")), [os.path.join(src, name), "links outside", "refusing to read it"]
    return build


def tokenizer_config_case(mutate, *fragments):
    def build(t):
        src = t.src()
        path = os.path.join(src, "tokenizer_config.json")
        cfg = load_json(path)
        mutate(cfg)
        write(path, json.dumps(cfg))
        return export_args(src, t.path("pkg")), [path, *fragments]
    return build


def source_file_case(name, make, *fragments):
    def build(t):
        src = t.src()
        path = os.path.join(src, name)
        if os.path.lexists(path):
            os.remove(path)
        make(t, path)
        return export_args(src, t.path("pkg")), [path, *fragments]
    return build


def hub_case(spec, *fragments):
    def build(t):
        shown = "".join(c if 0x20 <= ord(c) != 0x7f else "\\x%02x" % ord(c) for c in spec)
        return export_args(spec, t.path("pkg")), ["model id '" + shown[:60], *fragments], {"HF_HUB_CACHE": t.path("hub")}
    return build


def cache(t, refs=None, snapshot=True, files=True):
    """A minimal huggingface_hub cache for acme/tiny-bert; returns (repo, commit)."""
    repo = t.path("hub", "models--acme--tiny-bert")
    commit = "3" * 40
    for rev, value in (refs or {"main": commit}).items():
        write(os.path.join(repo, "refs", rev), value)
    if snapshot:
        snap = os.path.join(repo, "snapshots", commit)
        os.makedirs(snap)
        if files:
            for name in os.listdir(os.path.join(SOURCES, PREBUILT)) + ["onnx/model.onnx"]:
                p = os.path.join(SOURCES, PREBUILT, name)
                if os.path.isfile(p):
                    blob = os.path.join(repo, "blobs", name.replace("/", "_") + ".blob")
                    shutil.copy(p, blob) if os.path.isdir(os.path.dirname(blob)) else write(blob, read(p))
                    os.makedirs(os.path.dirname(os.path.join(snap, name)), exist_ok=True)
                    up = os.path.join(*[".."] * (2 + name.count("/")))
                    os.symlink(os.path.join(up, "blobs", os.path.basename(blob)), os.path.join(snap, name))
    return repo, commit


def cache_case(setup, spec, *fragments):
    def build(t):
        extra = setup(t)
        return export_args(spec, t.path("pkg")), [*fragments, *(extra or [])], {"HF_HUB_CACHE": t.path("hub")}
    return build


class BadSource(Table):
    CASES = [
        ("tokenizer_json_links_out", link_out("tokenizer.json", lambda t: write(t.path("outside", "tokenizer.json"), "{}")),
         "invalid_input"),
        ("tokenizer_json_links_to_etc", link_out("tokenizer.json", lambda t: "/etc/passwd"), "invalid_input"),
        ("vocab_links_out_relative", link_out("vocab.txt", lambda t: (write(t.path("vocab.txt"), "[PAD]\n"), "../vocab.txt")[1]),
         "invalid_input"),
        ("tokenizer_config_links_out", link_out("tokenizer_config.json", lambda t: write(t.path("o", "tokenizer_config.json"), "{}")),
         "invalid_input"),
        ("special_tokens_links_out", link_out("special_tokens_map.json", lambda t: write(t.path("o", "stm.json"), "{}")),
         "invalid_input"),
        ("tokenizer_config_file_key_parent", tokenizer_config_case(lambda c: c.update(vocab_file="../../etc/passwd"),
                                                                   '"vocab_file" points outside the model source'), "invalid_input"),
        ("tokenizer_config_file_key_absolute", tokenizer_config_case(lambda c: c.update(merges_file="/etc/shadow"),
                                                                     '"merges_file" points outside the model source'), "invalid_input"),
        ("tokenizer_config_not_object", source_file_case("tokenizer_config.json", lambda t, p: write(p, "[1, 2]"),
                                                         "expected a JSON object"), "invalid_input"),
        ("tokenizer_json_invalid", source_file_case("tokenizer.json", lambda t, p: write(p, '{"model": {'), "invalid JSON"),
         "invalid_input"),
        ("tokenizer_json_nested", source_file_case("tokenizer.json", lambda t, p: write(p, deep(100000)), "nesting deeper"),
         "invalid_input"),
        ("special_tokens_duplicate_key", source_file_case("special_tokens_map.json",
                                                          lambda t, p: write(p, '{"unk_token": "a", "unk_token": "b"}'),
                                                          'duplicate key "unk_token"'), "invalid_input"),
        ("special_tokens_is_directory", source_file_case("special_tokens_map.json", lambda t, p: os.mkdir(p), "not a regular file"),
         "invalid_input"),
        ("vocab_is_a_fifo", source_file_case("vocab.txt", lambda t, p: os.mkfifo(p), "not a regular file"), "invalid_input"),
        ("tokenizer_link_loop", source_file_case("tokenizer.json", lambda t, p: (os.symlink("loop2", p),
                                                                                 os.symlink("tokenizer.json", p[:-14] + "loop2")),
                                                 "broken link"), "invalid_input"),
        # Hub ids: validated before the cache is touched.
        ("hub_id_dotdot_name", hub_case("acme/..", "invalid model name"), "invalid_input"),
        ("hub_id_dotdot_inside", hub_case("acme/../../etc", "more than one '/'"), "invalid_input"),
        ("hub_id_dotdot_revision", hub_case("acme/x@../../../etc/passwd", "invalid revision"), "invalid_input"),
        ("hub_id_dotdot_revision_middle", hub_case("acme/x@v1/../../x", "invalid revision"), "invalid_input"),
        ("hub_id_trailing_slash", hub_case("acme/x/", "more than one '/'"), "invalid_input"),
        ("hub_id_empty_name", hub_case("acme/", "invalid model name ''"), "invalid_input"),
        ("hub_id_empty_org", hub_case("x/", "invalid model name ''"), "invalid_input"),
        ("hub_id_double_dash", hub_case("ac--me/x", "invalid organisation"), "invalid_input"),
        ("hub_id_control_char", hub_case("acme/x\x01y", "control characters"), "invalid_input"),
        ("hub_id_escape_sequence", hub_case("acme/\x1b[2Jx", "control characters"), "invalid_input"),
        ("hub_id_newline", hub_case("acme/x\nmodelexport: error: forged", "control characters"), "invalid_input"),
        ("hub_id_delete_char", hub_case("acme/x\x7f", "control characters"), "invalid_input"),
        ("hub_id_space", hub_case("acme/x y", "invalid model name"), "invalid_input"),
        ("hub_id_revision_space", hub_case("acme/x@my branch", "invalid revision"), "invalid_input"),
        ("hub_id_empty_revision", hub_case("acme/x@", "invalid revision ''"), "invalid_input"),
        ("hub_id_long_name", hub_case("acme/" + "n" * 97, "invalid model name"), "invalid_input"),
        ("hub_id_very_long", hub_case("a" * 5000, "longer than 512 characters"), "invalid_input"),
        ("hub_id_long_revision", hub_case("acme/x@" + "r" * 300, "invalid revision"), "invalid_input"),
        ("absolute_path_not_found", lambda t: (export_args(t.path("no", "such", "model"), t.path("pkg")),
                                               [t.path("no", "such", "model"), "no such directory"]), "model_not_found"),
        ("relative_dotdot_not_found", lambda t: (export_args("../no-such-model-dir", t.path("pkg")),
                                                 ["../no-such-model-dir", "no such directory"]), "model_not_found"),
        # The offline cache.
        ("cache_repo_missing", cache_case(lambda t: None, "acme/tiny-bert", "acme/tiny-bert", "model not found",
                                          "models--acme--tiny-bert"), "model_not_found"),
        ("cache_ref_names_missing_snapshot", cache_case(lambda t: [cache(t, snapshot=False)[0]], "acme/tiny-bert",
                                                        "acme/tiny-bert", "the cache names commit " + "3" * 40, "has no"),
         "model_not_found"),
        ("cache_commit_without_snapshot", cache_case(lambda t: cache(t) and None, "acme/tiny-bert@" + "4" * 40,
                                                     "acme/tiny-bert@", "has no", "snapshots/" + "4" * 40), "model_not_found"),
        ("cache_revision_missing", cache_case(lambda t: cache(t) and None, "acme/tiny-bert@v9", "revision 'v9' is not in the cache"),
         "model_not_found"),
        ("cache_ref_not_a_hash", cache_case(lambda t: [cache(t, refs={"main": "../../../../etc/passwd\n"})[0]], "acme/tiny-bert",
                                            "refs/main", "does not hold a commit hash"), "invalid_input"),
        ("tokenizer_config_utf8_bom", source_file_case("tokenizer_config.json", lambda t, p: write(p, b'\xef\xbb\xbf{}'),
                                                       "byte order mark"), "invalid_input"),
        ("generation_config_utf8_bom", source_file_case("generation_config.json", lambda t, p: write(p, b'\xef\xbb\xbf{}'),
                                                        "byte order mark"), "invalid_input"),
        ("preprocessor_config_invalid_utf8", source_file_case("preprocessor_config.json",
                                                              lambda t, p: write(p, b'{"a": "\xc3\x28"}'), "invalid JSON"),
         "invalid_input"),
        ("cache_ref_huge", cache_case(lambda t: [cache(t, refs={"main": "3" * 40 + "\n" + " " * (4 * MIB)})[0]], "acme/tiny-bert",
                                      "refs/main", "larger than 256 bytes"), "invalid_input"),
        ("cache_ref_is_a_directory", cache_case(lambda t: os.makedirs(t.path("hub", "models--acme--tiny-bert", "refs", "main")),
                                                "acme/tiny-bert", "revision 'main' is not in the cache"), "model_not_found"),
        ("cache_snapshot_without_config", cache_case(lambda t: os.remove(os.path.join(cache(t)[0], "snapshots", "3" * 40, "config.json")),
                                                     "acme/tiny-bert", "acme/tiny-bert", "config.json required"), "config_missing"),
        ("cache_blob_missing", cache_case(lambda t: os.remove(os.path.join(cache(t)[0], "blobs", "config.json.blob")),
                                          "acme/tiny-bert", "config.json", "broken link"), "invalid_input"),
    ]

    def test_cache_snapshot_linking_out_of_the_repository(self):
        repo, commit = cache(self)
        snap = os.path.join(repo, "snapshots", commit)
        os.remove(os.path.join(snap, "tokenizer.json"))
        os.symlink(write(self.path("evil", "tokenizer.json"), "{}"), os.path.join(snap, "tokenizer.json"))
        self.check_row(lambda t: (export_args("acme/tiny-bert", t.path("pkg")), [os.path.join(snap, "tokenizer.json"), "links outside"],
                                  {"HF_HUB_CACHE": t.path("hub")}), "invalid_input")


# --------------------------------------------------------------------------- output directory

class BadOutput(Table):
    def mount(self, *args):
        target = self.path("mnt-" + str(len(self._mounts)))
        os.makedirs(target)
        subprocess.run(["mount", *args, target], check=True, capture_output=True)
        self._mounts.append(target)
        return target

    def setUp(self):
        super().setUp()
        self._mounts = []
        self.addCleanup(lambda: [subprocess.run(["umount", "-l", m], capture_output=True) for m in reversed(self._mounts)])

    CASES = [
        ("output_is_a_file", lambda t: (export_args(t.src(), write(t.path("pkg"), "x")), [t.path("pkg"), "not a directory"]),
         "io_error"),
        ("output_is_a_foreign_directory", lambda t: (export_args(t.src(), os.path.dirname(write(t.path("pkg", "notes.txt"), "x"))),
                                                     [t.path("pkg"), "not a modelexport package", "notes.txt"]), "io_error"),
        ("output_parent_is_a_file", lambda t: (export_args(t.src(), os.path.join(write(t.path("file"), "x"), "pkg")),
                                               [t.path("file")]), "io_error"),
        ("output_inside_the_source", lambda t: (lambda s: (export_args(s, os.path.join(s, "pkg")), [os.path.join(s, "pkg"),
                                                                                                  "inside the model source"]))(t.src()),
         "usage"),
        ("output_is_the_source", lambda t: (lambda s: (export_args(s, s), [s, "inside the model source"]))(t.src()), "usage"),
        ("output_inside_the_source_via_dotdot", lambda t: (lambda s: (export_args(s, os.path.join(s, "onnx", "..", "pkg")),
                                                                      ["inside the model source"]))(t.src()), "usage"),
    ]

    @unittest.skipUnless(MOUNT_OK, NO_MOUNT)
    def test_output_on_a_read_only_bind_mount(self):
        src = self.src()
        # a previous package on the read-only file system must survive untouched
        run("export", src, self.path("rw", "pkg"), check=0)
        ro = self.mount("--bind", "-o", "ro", self.path("rw"))
        before = sorted(os.listdir(os.path.join(ro, "pkg")))
        self.check_row(lambda t: (export_args(src, os.path.join(ro, "pkg")), [ro, "Read-only file system"]), "io_error")
        self.assertEqual(sorted(os.listdir(os.path.join(ro, "pkg"))), before)

    @unittest.skipUnless(MOUNT_OK, NO_MOUNT)
    def test_output_on_a_read_only_tmpfs(self):
        src = self.src()
        ro = self.mount("-t", "tmpfs", "-o", "ro,size=64k", "tmpfs")
        self.check_row(lambda t: (export_args(src, os.path.join(ro, "new", "pkg")), [ro, "Read-only file system"]), "io_error")

    @unittest.skipUnless(MOUNT_OK, NO_MOUNT)
    def test_output_on_a_full_file_system(self):
        src = self.src()
        full = self.mount("-t", "tmpfs", "-o", "size=200k", "tmpfs")
        self.check_row(lambda t: (export_args(src, os.path.join(full, "pkg")), [full, "No space left on device"]), "io_error")
        # nothing is left: no package, no staging directory, no lock
        self.assertEqual(os.listdir(full), [])

    @unittest.skipUnless(MOUNT_OK, NO_MOUNT)
    def test_full_file_system_keeps_the_previous_package(self):
        src = self.src()
        full = self.mount("-t", "tmpfs", "-o", "size=600k", "tmpfs")
        out = os.path.join(full, "pkg")
        run("export", src, out, check=0)
        before = {n: read(os.path.join(out, n)) for n in os.listdir(out)}
        write(os.path.join(full, "ballast"), b"\0" * (600 * 1024 - 300 * 1024))  # the new staging copy cannot fit
        p = run("export", src, out, "--embed-hierarchy")
        self.assertFailsWith(p, "io_error", full, "No space left on device")
        self.assertEqual({n: read(os.path.join(out, n)) for n in os.listdir(out)}, before)
        self.assertEqual(sorted(os.listdir(full)), ["ballast", "pkg"])


# --------------------------------------------------------------------------- the exporter

def exporter_case(body, *fragments, extra=(), source=TEXT):
    def build(t):
        script = write(t.path("fake_exporter.py"), body(t) if callable(body) else body)
        return (export_args(source, t.path("pkg"), "--model", "modeling.py:build", "--exporter-script", script, *extra),
                [f.replace("{script}", script) for f in fragments])
    return build


VALID_ONNX = os.path.join(EXAMPLES, "text-classification", "model.onnx")


def daemon_case():
    """An exporter whose child leaves the process group (setsid) with stdout/stderr
    still open, then hangs: the timeout must still end the export."""
    body = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n"
            "    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'daemon.pid'), 'w').write(str(os.getpid()))\n"
            "    time.sleep(120)\n    os._exit(0)\ntime.sleep(600)\n")
    inner = exporter_case(body, "{script}", "timed out after 2 s", extra=("--timeout", "2"))

    def build(t):
        t.addCleanup(kill_recorded_pid, t.path("daemon.pid"))  # runs before the directory is removed
        t.written_by_test_code = {"daemon.pid"}  # the fake exporter's own write, not modelexport's
        return inner(t)
    return build


def kill_recorded_pid(pid_file):
    try:
        os.kill(int(read(pid_file)), signal.SIGKILL)
    except (OSError, ValueError):
        pass


def writes_onnx_and(table_code):
    return (fake_exporter_arguments() + f"import shutil\nshutil.copy({VALID_ONNX!r}, a.onnx)\n" + table_code)


class BadExporter(Table):
    CASES = [
        ("exporter_segfaults", exporter_case("import os\nos.kill(os.getpid(), 11)\n", "{script}", "killed by signal 11"),
         "export_failed"),
        ("exporter_aborts", exporter_case("import os\nprint('about to abort', flush=True)\nos.abort()\n", "{script}",
                                          "killed by signal 6"), "export_failed"),
        ("exporter_exit_status", exporter_case("import sys\nprint('RuntimeError: shape mismatch', file=sys.stderr)\nsys.exit(3)\n",
                                               "{script}", "exit status 3", "shape mismatch"), "export_failed"),
        ("exporter_prints_garbage_and_fails", exporter_case(
            "import sys, os\nos.write(1, bytes(range(256)) * 50)\n"
            "os.write(2, b'\\x1b[2J\\x1b[31mred\\r\\x00\\x07bell\\nTraceback: garbage\\xff\\xfe\\n')\nsys.exit(1)\n",
            "{script}", "exit status 1", "Traceback: garbage", "\\x1b[2J"), "export_failed"),
        ("exporter_huge_stderr_line", exporter_case("import sys, os\nos.write(2, b'E' * (8 << 20))\nsys.exit(2)\n",
                                                    "{script}", "exit status 2"), "export_failed"),
        ("exporter_hangs", exporter_case("import time\ntime.sleep(600)\n", "{script}", "timed out after 2 s",
                                         extra=("--timeout", "2")), "export_failed"),
        ("exporter_hangs_in_a_grandchild", exporter_case(
            "import os, time\nif os.fork() == 0:\n    time.sleep(600)\n    os._exit(0)\ntime.sleep(600)\n",
            "{script}", "timed out after 2 s", extra=("--timeout", "2")), "export_failed"),
        ("exporter_leaves_a_daemon_holding_its_output", daemon_case(), "export_failed"),
        ("exporter_closes_its_output_and_hangs", exporter_case("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(600)\n",
                                                               "{script}", "timed out after 2 s", extra=("--timeout", "2")),
         "export_failed"),
        ("exporter_writes_no_onnx", exporter_case("print('all good, honestly')\n", "{script}", "wrote no ONNX model"),
         "export_failed"),
        ("exporter_writes_empty_onnx", exporter_case(fake_exporter_arguments() + "open(a.onnx, 'wb').close()\n",
                                                     "{script}", "wrote no ONNX model"), "export_failed"),
        ("exporter_writes_a_directory", exporter_case(fake_exporter_arguments() + "os.mkdir(a.onnx)\n",
                                                      "{script}", "wrote no ONNX model"), "export_failed"),
        ("exporter_writes_garbage_onnx", exporter_case(fake_exporter_arguments() + "open(a.onnx, 'wb').write(b'\\x08garbage' * 10)\n"
                                                       "open(a.modules, 'w').write('{\"modules\": []}')\n",
                                                       "model.onnx written by {script}", "not a valid ONNX model"), "invalid_input"),
        ("exporter_writes_cyclic_onnx", exporter_case(lambda t: fake_exporter_arguments() + "import onnx\n" +
                                                      f"open(a.onnx, 'wb').write({cyclic_model().SerializeToString()!r})\n"
                                                      "open(a.modules, 'w').write('{\"modules\": []}')\n",
                                                      "{script}", "ONNX checker"), "invalid_input"),
        ("exporter_writes_no_module_table", exporter_case(writes_onnx_and(""), "{script}", "module table"), "export_failed"),
        ("exporter_writes_invalid_module_table", exporter_case(writes_onnx_and("open(a.modules, 'w').write('{\"modules\": [')\n"),
                                                               "{script}", "module table", "invalid JSON"), "export_failed"),
        ("exporter_writes_wrong_module_types", exporter_case(
            writes_onnx_and("open(a.modules, 'w').write('{\"modules\": [{\"path\": 1, \"class\": []}]}')\n"),
            "{script}", "module table"), "export_failed"),
        ("exporter_writes_module_table_without_modules", exporter_case(
            writes_onnx_and("open(a.modules, 'w').write('{\"parameters\": \"many\"}')\n"), "{script}", "module table"),
         "export_failed"),
        ("exporter_writes_a_symlinked_onnx", exporter_case(
            writes_onnx_and("open(a.modules, 'w').write('{\"modules\": []}')\nos.remove(a.onnx)\nos.symlink('/etc/passwd', a.onnx)\n"),
            "model.onnx written by {script}", "not a valid ONNX model"), "invalid_input"),
        ("exporter_script_missing", lambda t: (export_args(TEXT, t.path("pkg"), "--model", "modeling.py:build", "--exporter-script",
                                                           t.path("nope.py")), [t.path("nope.py"), "exporter script not found"]),
         "export_failed"),
        ("python_missing", lambda t: (export_args(TEXT, t.path("pkg"), "--model", "modeling.py:build", "--python",
                                                  "no-such-python-3.99"), ["no-such-python-3.99", "not found"]), "export_failed"),
        ("python_not_executable", lambda t: (export_args(TEXT, t.path("pkg"), "--model", "modeling.py:build", "--python",
                                                         write(t.path("python"), "not a program")), [t.path("python")]),
         "export_failed"),
        ("command_fails", lambda t: (export_args(TEXT, t.path("pkg"), "--strategy", "command", "--command",
                                                 "echo 'optimum: no such task' >&2; exit 4"),
                                     ["--command", "exit status 4", "no such task"]), "export_failed"),
        ("command_writes_nothing", lambda t: (export_args(TEXT, t.path("pkg"), "--strategy", "command", "--command", "true"),
                                              ["--command", "wrote no model.onnx"]), "export_failed"),
        ("command_killed", lambda t: (export_args(TEXT, t.path("pkg"), "--strategy", "command", "--command", "kill -SEGV $$"),
                                      ["--command", "killed by signal 11"]), "export_failed"),
        ("command_hangs", lambda t: (export_args(TEXT, t.path("pkg"), "--strategy", "command", "--command", "sleep 600",
                                                 "--timeout", "2"), ["--command", "timed out after 2 s"]), "export_failed"),
    ]

    def test_command_onnx_file_cannot_leave_its_output(self):
        victim = shutil.copy(VALID_ONNX, self.path("victim.onnx"))
        p = run("export", TEXT, self.path("pkg"), "--strategy", "command", "--command", "true", "--onnx-file", "../../victim.onnx")
        self.assertFailsWith(p, "usage", "--onnx-file", "../../victim.onnx")
        self.assertTrue(os.path.isfile(victim), "the command strategy moved a file from outside its output")
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_command_output_symlink_is_refused_not_followed(self):
        # {output} files are taken through its descriptor without following links: a link is refused.
        out = self.path("pkg")
        p = run("export", TEXT, out, "--strategy", "command", "--command", f"ln -s {VALID_ONNX} {{output}}/model.onnx")
        self.assertFailsWith(p, "export_failed", "--command", "model.onnx is a symbolic link")
        self.assertFalse(os.path.lexists(out))


# --------------------------------------------------------------------------- verify / inspect / bindings: a damaged export_metadata.json

def drop(d, key):
    del d[key]


def metadata_case(command, mutate, *fragments):
    """verify/inspect/bindings on a copy of a package whose export_metadata.json was edited by `mutate(meta)`."""
    def build(t):
        pkg = t.path("pkg-copy")
        shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
        path = os.path.join(pkg, "export_metadata.json")
        meta = load_json(path)
        text = mutate(meta)  # edits meta in place, or returns the file's new text
        write(path, text if isinstance(text, str) else json.dumps(meta))
        extra = {"verify": [], "inspect": [], "inspect-json": ["--json"], "bindings": ["--header", t.path("b.hpp")]}[command]
        return [command.split("-")[0], pkg, *extra], [path, *fragments]
    return build


class BadMetadata(Table):
    CASES = [
        ("verify_files_entry_not_object", metadata_case("verify", lambda m: m["files"].update({"config.json": 5}),
                                                        'malformed: files entry "config.json"'), "invalid_input"),
        ("verify_size_not_number", metadata_case("verify", lambda m: m["files"]["vocab.txt"].update(size="big"),
                                                 'files entry "vocab.txt"'), "invalid_input"),
        ("verify_files_missing", metadata_case("verify", lambda m: drop(m, "files"), 'no "files" object'), "invalid_input"),
        ("verify_not_json", metadata_case("verify", lambda m: '{"files": {', "invalid JSON"), "invalid_input"),
        ("verify_nested", metadata_case("verify", lambda m: deep(100000), "nesting deeper"), "invalid_input"),
        ("inspect_model_not_object", metadata_case("inspect", lambda m: m.update(model="bert"), '"model" is not an object'),
         "invalid_input"),
        ("inspect_model_missing", metadata_case("inspect", lambda m: drop(m, "model"), '"model" is not an object'), "invalid_input"),
        ("inspect_node_tag_not_string", metadata_case("inspect", lambda m: m["nodes"].update({"/x/MatMul": 7}),
                                                      'node "/x/MatMul"'), "invalid_input"),
        ("inspect_json_task_not_string", metadata_case("inspect-json", lambda m: m["model"].update(task=["a"]),
                                                       'string task'), "invalid_input"),
        ("bindings_role_missing", metadata_case("bindings", lambda m: drop(m["files"]["config.json"], "role"),
                                                'files entry "config.json"'), "invalid_input"),
        ("bindings_sha_not_string", metadata_case("bindings", lambda m: m["files"]["model.onnx"].update(sha256=1),
                                                  'files entry "model.onnx"'), "invalid_input"),
    ]


# --------------------------------------------------------------------------- external data anywhere
#
# A tensor can point at external data from anywhere in a model (docs/design.md §11): If/Loop
# subgraphs, sparse initializers, function bodies, a second `graph` field that protobuf merges
# into the first, or a tensor that also carries raw_data. Each hostile model is refused by
# export and by validate, which never write outside their output, and ONNX Runtime refuses the
# same package (checked with onnxruntime-node where it is installed).

def escaping(name, location="../outside.bin", n=4):
    """A float[n] tensor whose data is declared to live at `location`."""
    t = numpy_helper.from_array(np.arange(n, dtype=np.float32), name)
    return externalize_tensor(t, location)


def externalize_tensor(t, location, length=None):
    length = len(t.raw_data) if length is None else length
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def in_subgraph(model, location="../outside.bin"):
    """An If node (on a constant condition) whose then-branch holds a Loop body whose Constant is external."""
    f4 = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [4])
    body = helper.make_graph([helper.make_node("Constant", [], ["k"], value=escaping("deep", location), name="/deep/Constant")],
                             "body", [], [f4("k")])
    then_g = helper.make_graph([helper.make_node("If", ["ext_cond"], ["t"], then_branch=body, else_branch=body, name="/inner/If")],
                               "then", [], [f4("t")])
    model.graph.node.extend([
        helper.make_node("Constant", [], ["ext_cond"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True]), name="/cond/Constant"),
        helper.make_node("If", ["ext_cond"], ["ext_out"], then_branch=then_g, else_branch=then_g, name="/outer/If")])
    model.graph.output.append(f4("ext_out"))  # used, so ONNX Runtime cannot drop it before reading its data
    return model


def in_sparse_initializer(model, location="../outside.bin"):
    indices = numpy_helper.from_array(np.array([0, 1, 2, 3], dtype=np.int64), "ext_indices")
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(escaping("ext_values", location), indices, [8]))
    return model


def in_function(model, location="../outside.bin"):
    fn = helper.make_function("ext.local", "Leak", [], ["o"], [helper.make_node("Constant", [], ["o"], value=escaping("fn_const", location),
                                                                                  name="/fn/Constant")],
                              [helper.make_opsetid("", 14)])
    model.functions.append(fn)
    model.opset_import.append(helper.make_opsetid("ext.local", 1))
    model.graph.node.append(helper.make_node("Leak", [], ["leak_out"], domain="ext.local", name="/leak/Leak"))
    model.graph.output.append(helper.make_tensor_value_info("leak_out", TensorProto.FLOAT, [4]))  # used: see in_subgraph
    return model


def raw_and_external(model, location="../outside.bin"):
    """The largest initializer keeps its raw_data and also says it is EXTERNAL (ONNX Runtime follows the location)."""
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    raw = big.raw_data
    externalize_tensor(big, location)
    big.raw_data = raw
    return model


def graph_field_twice(model, location="../outside.bin"):
    """The largest initializer, externalized, alone in a first `graph` field; the rest of the model after it.
    Protobuf merges the two graph fields (ONNX Runtime sees the escaping initializer); a reader that
    replaced the first with the second would not."""
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    first = onnx.ModelProto()
    first.graph.initializer.append(externalize_tensor(onnx.TensorProto.FromString(big.SerializeToString()), location))
    model.graph.initializer.remove(big)
    return first.SerializeToString() + model.SerializeToString()


HOSTILE = [("subgraph", in_subgraph, "node '/deep/Constant' attribute 'value' points outside the package"),
           ("sparse_initializer", in_sparse_initializer, "sparse initializer values points outside the package"),
           ("function_body", in_function, "function 'Leak' node '/fn/Constant' attribute 'value' points outside the package"),
           ("raw_data_and_external", raw_and_external, "has both inline data and an external data location"),
           ("graph_field_twice", graph_field_twice, "points outside the package: ../outside.bin")]


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def in_function_attribute_default(model, location="../outside.bin"):
    """A model-local function whose attribute default (FunctionProto.attribute_proto, field 11 since
    ONNX 1.13) is an external tensor; written by hand, since older onnx Python has no such field."""
    fn = helper.make_function("ext.local", "Scaled", [], ["o"], [helper.make_node("Constant", [], ["o"], value_float=1.0, name="/fn/c")],
                              [helper.make_opsetid("", 14)])
    default = helper.make_attribute("alpha", escaping("fn_default", location))
    body = default.SerializeToString()
    fn_bytes = fn.SerializeToString() + varint((11 << 3) | 2) + varint(len(body)) + body
    model.opset_import.append(helper.make_opsetid("ext.local", 1))
    return model.SerializeToString() + varint((25 << 3) | 2) + varint(len(fn_bytes)) + fn_bytes  # ModelProto.functions


def in_training_info(model, location="../outside.bin"):
    info = model.training_info.add()
    info.initialization.CopyFrom(helper.make_graph([], "init", [], [], initializer=[escaping("train_init", location)]))
    info.algorithm.CopyFrom(helper.make_graph([], "algo", [], [], initializer=[escaping("train_algo", location)]))
    return model


# Tensor homes ONNX Runtime may ignore (training graphs) or older onnx cannot write: refused all the same.
RARER_HOMES = [("function_attribute_default", in_function_attribute_default, "function 'Scaled' default attribute 'alpha' points outside the package"),
               ("training_info", in_training_info, "training_info 0 initialization > graph 'init' initializer 'train_init' points outside the package")]


def save_any(value, path):
    # Serialized by hand: onnx.save would write an external tensor's raw_data to its location.
    write(path, value if isinstance(value, bytes) else value.SerializeToString())


def ort_refuses(pkg):
    """True when onnxruntime-node refuses the package, None when it cannot be run here."""
    if not shutil.which(NODE) or not os.path.isdir(os.path.join(RUNTIME_DIR, "node_modules")):
        return None
    p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "ort_check.mjs"), pkg], capture_output=True, text=True, timeout=300)
    return p.returncode != 0


def per_tensor_source(t, damage):
    """A prebuilt source saved with one external file per tensor, then `damage(onnx_dir, files)`."""
    src = t.src()
    onnx_dir = os.path.join(src, "onnx")
    model = onnx.load(os.path.join(onnx_dir, "model.onnx"))
    onnx.save_model(model, os.path.join(onnx_dir, "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=False,
                    size_threshold=0)
    files = sorted(f for f in os.listdir(onnx_dir) if f != "model.onnx")
    biggest = max(files, key=lambda f: os.path.getsize(os.path.join(onnx_dir, f)))
    fragment, names_data_file = damage(t, onnx_dir, biggest)
    named = os.path.join(onnx_dir, biggest if names_data_file else "model.onnx")
    return export_args(src, t.path("pkg")), [named, fragment]


def link_out_of_source(t, d, name):
    write(t.path("outside", name), read(os.path.join(d, name)))
    os.remove(os.path.join(d, name))
    os.symlink(t.path("outside", name), os.path.join(d, name))
    return "links outside", True


def truncate_file(t, d, name):
    write(os.path.join(d, name), read(os.path.join(d, name))[:-4])
    return "which has only", False


def remove_file(t, d, name):
    os.remove(os.path.join(d, name))
    return "needs missing file " + name, False


def fifo_instead(t, d, name):
    os.remove(os.path.join(d, name))
    os.mkfifo(os.path.join(d, name))
    return "not a regular file", True


class BadExternalData(Table):
    """External data anywhere, as export and validate see them."""
    CASES = [("export_" + name, (lambda make, frag: lambda t: hostile_export(t, make, frag))(make, frag), "invalid_input")
             for name, make, frag in HOSTILE] + [
        ("per_tensor_file_links_out_of_the_source", lambda t: per_tensor_source(t, link_out_of_source), "invalid_input"),
        ("per_tensor_file_truncated", lambda t: per_tensor_source(t, truncate_file), "invalid_input"),
        ("per_tensor_file_missing", lambda t: per_tensor_source(t, remove_file), "invalid_input"),
        ("per_tensor_file_is_a_fifo", lambda t: per_tensor_source(t, fifo_instead), "invalid_input"),
        ("command_per_tensor_file_links_out", lambda t: command_per_tensor_link(t), "invalid_input"),
    ] + [("export_" + name, (lambda make, frag: lambda t: hostile_export(t, make, frag))(make, frag), "invalid_input")
         for name, make, frag in RARER_HOMES]

    def check_row(self, builder, code):
        # Nothing outside the output may change: hash the whole surrounding tree before and after.
        write(self.path("outside.bin"), bytes(range(256)) * 64)
        holder = {}

        def hashed_builder(t):
            spec = builder(t)
            holder["before"] = tree_snapshot(self.tmp)
            return spec
        super().check_row(hashed_builder, code)
        self.assertEqual(tree_snapshot(self.tmp), holder["before"], "the failed export changed files outside its output")

    def test_validate_refuses_what_onnx_runtime_refuses(self):
        for name, make, fragment in HOSTILE:
            with self.subTest(name):
                pkg = self.path("pkg-" + name)
                shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
                write(self.path("outside.bin"), bytes(range(256)) * 64)
                save_any(make(onnx.load(os.path.join(pkg, "model.onnx"))), os.path.join(pkg, "model.onnx"))
                before = tree_snapshot(self.tmp)
                p = run("validate", pkg, "--json", timeout=300)
                self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
                failed = {c["id"]: c["message"] for c in json.loads(p.stdout)["checks"] if c["status"] == "fail"}
                self.assertIn("onnx.external_data", failed)
                self.assertIn(os.path.join(pkg, "model.onnx"), failed["onnx.external_data"])
                self.assertIn(fragment, failed["onnx.external_data"])
                self.assertEqual(tree_snapshot(self.tmp), before, "validate wrote files")
                self.assertIn(ort_refuses(pkg), (True, None), "ONNX Runtime loads a package modelexport refuses: the case is wrong")


def hostile_export(t, make, fragment):
    src = t.src()
    shutil.rmtree(os.path.join(src, "onnx"))
    path = os.path.join(src, "model.onnx")
    save_any(make(example_model()), path)
    return export_args(src, t.path("pkg")), [path, fragment]


def command_per_tensor_link(t):
    """A --command that writes per-tensor files, one of them a link to a file outside its output."""
    outside = write(t.path("outside-copy"), b"\0" * 4096)
    script = write(t.path("export.py"), "import onnx, os, sys\n"
                   f"m = onnx.load({os.path.join(EXAMPLES, 'text-classification', 'model.onnx')!r})\n"
                   "onnx.save_model(m, sys.argv[1] + '/model.onnx', save_as_external_data=True, all_tensors_to_one_file=False,"
                   " size_threshold=0)\n"
                   "f = max((n for n in os.listdir(sys.argv[1]) if n != 'model.onnx'), key=lambda n: os.path.getsize(sys.argv[1] + '/' + n))\n"
                   "os.remove(sys.argv[1] + '/' + f)\n"
                   f"os.symlink({outside!r}, sys.argv[1] + '/' + f)\n")
    return (export_args(os.path.join(SOURCES, PREBUILT), t.path("pkg"), "--strategy", "command", "--command",
                        f"/usr/bin/python3 {script} {{output}}"), ["model.onnx written by --command", "links outside"])


# --------------------------------------------------------------------------- validate: broken packages are failed checks

def package_case(mutate, check_id, *fragments, name="text-classification", only=True):
    """A copy of an example package broken by `mutate(t, pkg)`: validate --json fails `check_id` (exit 7)."""
    return (mutate, check_id, fragments, name, only)


def replace_model(data):
    def mutate(t, pkg):
        value = data(t, pkg) if callable(data) else data
        path = os.path.join(pkg, "model.onnx")
        if isinstance(value, onnx.ModelProto):
            onnx.save(value, path)
        else:
            write(path, value)
    return mutate


def with_real_model(change, name="text-classification"):
    def make(t, pkg):
        model = onnx.load(os.path.join(pkg, "model.onnx"))
        change(t, pkg, model)
        return model
    return make


def add_cycle(t, pkg, model):
    first = model.graph.input[0].name
    model.graph.node.extend([helper.make_node("Add", [first, "cycle_b"], ["cycle_a"], name="/cycle/Add"),
                             helper.make_node("Neg", ["cycle_a"], ["cycle_b"], name="/cycle/Neg")])


def add_undefined_input(t, pkg, model):
    model.graph.node.extend([helper.make_node("Neg", ["never_defined"], ["ghost_out"], name="/ghost/Neg")])


def ext(location, **kw):
    def change(t, pkg, model):
        loc = location(t, pkg) if callable(location) else location
        externalize(model, loc, **{k: (v(t, pkg) if callable(v) else v) for k, v in kw.items()})
    return with_real_model(change)


class BadPackage(TempDirTest):
    CASES = [
        ("onnx_truncated", package_case(replace_model(lambda t, p: read(os.path.join(p, "model.onnx"))[:5000]),
                                        "onnx.parse", "model.onnx", "not a valid ONNX model")),
        ("onnx_empty", package_case(replace_model(b""), "onnx.parse", "model.onnx", "no graph")),
        ("onnx_random_bytes", package_case(replace_model(random_bytes(10000, 11)), "onnx.parse", "model.onnx", "ONNX model")),
        ("onnx_wrong_magic", package_case(replace_model(b"\x89PNG\r\n\x1a\n" + random_bytes(3000, 5)), "onnx.parse", "model.onnx",
                                          "ONNX model")),
        ("onnx_is_a_directory", package_case(lambda t, p: (os.remove(os.path.join(p, "model.onnx")), os.mkdir(os.path.join(p, "model.onnx"))),
                                             "package.entries", "model.onnx", "is a directory, not a regular file", only=False)),
        ("onnx_cycle", package_case(replace_model(with_real_model(add_cycle)), "onnx.checker", "model.onnx", "cycle_b")),
        ("onnx_undefined_input", package_case(replace_model(with_real_model(add_undefined_input)), "onnx.checker", "model.onnx",
                                              "never_defined")),
        ("onnx_external_parent_dir", package_case(replace_model(ext("../weights.bin", data_dir=lambda t, p: t.tmp, data_name="weights.bin")),
                                                  "onnx.external_data", "model.onnx", "points outside the package: ../weights.bin")),
        ("onnx_external_absolute", package_case(replace_model(ext(lambda t, p: t.path("abs.bin"), data_dir=lambda t, p: "/",
                                                                  data_name=lambda t, p: t.path("abs.bin").lstrip("/"))),
                                                "onnx.external_data", "model.onnx", "points at an absolute path")),
        ("onnx_external_missing", package_case(replace_model(ext("model.onnx_data")), "onnx.external_data", "model.onnx",
                                               "needs missing file model.onnx_data")),
        ("onnx_external_short", package_case(replace_model(ext("model.onnx_data", data_dir=lambda t, p: p, short_by=1)),
                                             "onnx.external_data", "model.onnx", "reads bytes", "which has only")),
        ("onnx_external_link_out", package_case(
            lambda t, p: (replace_model(ext("model.onnx_data", data_dir=lambda t, p: t.path("elsewhere")))(t, p),
                          os.symlink(t.path("elsewhere", "model.onnx_data"), os.path.join(p, "model.onnx_data"))),
            "package.entries", "model.onnx_data", "is a symbolic link")),  # refused before any reader follows it
        ("onnx_external_bad_offset", package_case(replace_model(ext("model.onnx_data", data_dir=lambda t, p: p, offset="0x10")),
                                                  "onnx.external_data", "model.onnx", "offset")),
        ("onnx_external_bad_length", package_case(replace_model(ext("model.onnx_data", data_dir=lambda t, p: p,
                                                                    length="99999999999999999999999")),
                                                  "onnx.external_data", "model.onnx", "length")),
        ("config_nested_100000", package_case(lambda t, p: write(os.path.join(p, "config.json"), deep(100000)), "config.parse",
                                              "config.json", "nesting deeper than 64 levels", only=False)),
        ("config_huge", package_case(lambda t, p: write(os.path.join(p, "config.json"), "[" + "0," * (9 * MIB) + "0]"),
                                     "config.parse", "config.json", "larger than", only=False)),
        ("config_invalid_utf8", package_case(lambda t, p: write(os.path.join(p, "config.json"), b'{"model_type": "\xc0\xaf"}'),
                                             "config.parse", "config.json", "invalid JSON", only=False)),
        ("config_duplicate_key", package_case(lambda t, p: write(os.path.join(p, "config.json"), '{"model_type": "bert", "model_type": "x"}'),
                                              "config.parse", "config.json", "duplicate key", only=False)),
        ("config_id2label_key_not_an_int", package_case(
            lambda t, p: write(os.path.join(p, "config.json"), '{"model_type": "bert", "architectures": ["BertForSequenceClassification"], '
                                                              '"id2label": {"0": "NEG", "abc": "POS"}}'),
            "config.model_type", "config.json", "id2label key 'abc' is not an integer")),
        ("config_no_model_type", package_case(
            lambda t, p: write(os.path.join(p, "config.json"), '{"architectures": ["BertForSequenceClassification"], '
                                                              '"id2label": {"0": "N", "1": "P"}}'),
            "config.model_type", "config.json", 'no "model_type" string')),
    ]

    @classmethod
    def generate(cls):
        for name, (mutate, check_id, fragments, example, only) in cls.CASES:
            def test(self, mutate=mutate, check_id=check_id, fragments=fragments, example=example, only=only):
                pkg = self.path("pkg")
                shutil.copytree(os.path.join(EXAMPLES, example), pkg)
                mutate(self, pkg)
                p = run("validate", pkg, "--json", timeout=300)
                self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
                self.assertNotIn("modelexport: error:", p.stderr)
                report = json.loads(p.stdout)
                failed = {c["id"]: c["message"] for c in report["checks"] if c["status"] == "fail"}
                self.assertIn(check_id, failed)
                for f in fragments:
                    self.assertIn(f, failed[check_id])
                self.assertIn(pkg, failed[check_id])
                if only:  # nothing else broke (the checker may refuse what external data cannot back): the case tests what it says
                    self.assertLessEqual(set(failed), {check_id, "onnx.checker"} if check_id == "onnx.external_data" else {check_id})
            test.__name__ = "test_" + name
            setattr(cls, test.__name__, test)
        return cls

    def test_not_a_directory(self):
        p = run("validate", write(self.path("file"), "x"))
        self.assertFailsWith(p, "validation_failed", self.path("file"), "not a package directory")

# --------------------------------------------------------------------------- pack / unpack / bindings

def metadata_entry(key, value):
    """The wire bytes of one ModelProto.metadata_props entry (field 14): appending
    them to a serialised model merges them; the last "modelexport.pack" wins."""
    body = onnx.StringStringEntryProto(key=key, value=value).SerializeToString()
    n, varint = len(body), b""
    while True:
        varint += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            break
    return b"\x72" + varint + body


def packed_model(t):
    pkg = t.path("pkg-to-pack")
    shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
    out = t.path("packed.onnx")
    run("pack", pkg, "--output", out, check=0)
    shutil.rmtree(pkg)
    return out


def manifest_case(mutate, *fragments):
    """unpack of a packed model whose manifest was replaced by `mutate(manifest)` (edits it or returns new text)."""
    def build(t):
        packed = packed_model(t)
        m = onnx.load(packed)
        manifest = json.loads([p.value for p in m.metadata_props if p.key == "modelexport.pack"][-1])
        text = mutate(manifest)
        with open(packed, "ab") as f:
            f.write(metadata_entry("modelexport.pack", text if isinstance(text, str) else json.dumps(manifest)))
        return ["unpack", packed, t.path("unpacked")], [packed, *fragments]
    return build


def file_entry(name, **changes):
    def mutate(m):
        m["files"][name].update(changes)
    return mutate


def bindings_with_dim(value):
    def build(t):
        pkg = t.path("pkg")
        shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
        model = onnx.load(os.path.join(pkg, "model.onnx"))
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = value
        onnx.save(model, os.path.join(pkg, "model.onnx"))
        return ["bindings", pkg, "--header", t.path("b.hpp")], [os.path.join(pkg, "model.onnx"), f"negative dimension {value}"]
    return build


def pack_over_directory(t):
    pkg = t.path("pkg")
    shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
    write(t.path("out.onnx", "keep"), "x")  # the output is a non-empty directory: the final rename fails
    return ["pack", pkg, "--output", t.path("out.onnx")], [t.path("out.onnx"), "cannot rename into place"]


HEX0 = "0" * 64


class BadPack(Table):
    CASES = [
        ("manifest_not_json", manifest_case(lambda m: "{", "invalid JSON"), "invalid_input"),
        ("manifest_array", manifest_case(lambda m: "[]", "not a JSON object"), "invalid_input"),
        ("manifest_bom", manifest_case(lambda m: "\ufeff{}", "byte order mark"), "invalid_input"),
        ("manifest_no_files", manifest_case(lambda m: drop(m, "files"), 'no "files" object'), "invalid_input"),
        ("manifest_files_array", manifest_case(lambda m: m.update(files=[]), 'no "files" object'), "invalid_input"),
        ("manifest_no_model", manifest_case(lambda m: drop(m, "model"), '"model" is not {size, sha256}'), "invalid_input"),
        ("manifest_model_size_negative", manifest_case(lambda m: m["model"].update(size=-1), '"model" is not'), "invalid_input"),
        ("manifest_model_size_string", manifest_case(lambda m: m["model"].update(size="12"), '"model" is not'), "invalid_input"),
        ("manifest_model_size_float", manifest_case(lambda m: m["model"].update(size=1.5), '"model" is not'), "invalid_input"),
        ("manifest_model_size_huge", manifest_case(lambda m: m["model"].update(size=2 ** 64 - 1), "shorter than the model"),
         "invalid_input"),
        ("manifest_model_size_beyond_u64", manifest_case(lambda m: m["model"].update(size=2 ** 70), '"model" is not'),
         "invalid_input"),
        ("manifest_model_sha_not_hex", manifest_case(lambda m: m["model"].update(sha256="zz"), '"model" is not'), "invalid_input"),
        ("manifest_model_sha_mismatch", manifest_case(lambda m: m["model"].update(sha256=HEX0), "do not match the recorded SHA-256"),
         "invalid_input"),
        ("manifest_format_version_2", manifest_case(lambda m: m.update(format_version=2), "format_version is not 1"), "invalid_input"),
        ("manifest_format_version_missing", manifest_case(lambda m: drop(m, "format_version"), "format_version"), "invalid_input"),
        ("manifest_file_traversal", manifest_case(lambda m: m["files"].update({"../evil.json": m["files"]["config.json"]}),
                                                  "unexpected file '../evil.json'"), "invalid_input"),
        ("manifest_file_is_the_model", manifest_case(lambda m: m["files"].update({"model.onnx": m["files"]["config.json"]}),
                                                     "unexpected file 'model.onnx'"), "invalid_input"),
        ("manifest_file_entry_number", manifest_case(lambda m: m["files"].update({"config.json": 5}), "files entry 'config.json'"),
         "invalid_input"),
        ("manifest_file_size_negative", manifest_case(file_entry("config.json", size=-1), "files entry 'config.json'"),
         "invalid_input"),
        ("manifest_file_size_mismatch", manifest_case(lambda m: m["files"]["config.json"].update(size=m["files"]["config.json"]["size"] + 1),
                                                      "stored config.json does not match"), "invalid_input"),
        ("manifest_file_sha_mismatch", manifest_case(file_entry("config.json", sha256=HEX0), "stored config.json does not match"),
         "invalid_input"),
        ("manifest_file_sha_missing", manifest_case(lambda m: drop(m["files"]["config.json"], "sha256"), "files entry 'config.json'"),
         "invalid_input"),
        ("manifest_encoding_unknown", manifest_case(file_entry("config.json", encoding="rot13"), "files entry 'config.json'"),
         "invalid_input"),
        ("manifest_encoding_base64_on_text", manifest_case(file_entry("config.json", encoding="base64"), "invalid base64"),
         "invalid_input"),
        ("manifest_file_not_stored", manifest_case(lambda m: m["files"].update({"merges.txt": m["files"]["config.json"]}),
                                                   "holds no such file"), "invalid_input"),
        ("bindings_negative_dim", bindings_with_dim(-3), "invalid_input"),
        ("bindings_min_int64_dim", bindings_with_dim(-(2 ** 63)), "invalid_input"),
        ("pack_output_is_a_directory", pack_over_directory, "io_error"),
    ]


# --------------------------------------------------------------------------- generated code is valid

def tool(*args, check=None):
    """modelexport with byte-string arguments (hostile file names)."""
    p = subprocess.run([os.fsencode(TOOL), *[a if isinstance(a, bytes) else os.fsencode(str(a)) for a in args]],
                       capture_output=True, timeout=120)
    if check is not None and p.returncode != check:
        raise AssertionError(f"modelexport {args!r}: exit {p.returncode}\n{p.stderr.decode(errors='replace')}")
    return p


def copy_package(dest, name="text-classification"):
    """Copies an example package to `dest` (bytes or str path)."""
    src = os.path.join(EXAMPLES, name)
    os.makedirs(dest)
    for f in os.listdir(src):
        shutil.copyfile(os.path.join(src, f), os.path.join(dest, os.fsencode(f) if isinstance(dest, bytes) else f))
    return dest


def cxx(*args, cwd=None):
    p = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", *args], capture_output=True, text=True, cwd=cwd,
                       timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"g++ {' '.join(map(str, args))}:\n{p.stderr[-4000:]}")


HOSTILE_LABELS = ["\0", "nul\0inside", 'quote"', "back\\slash", "??=", "trigraph??/", "\x1b[31mred", "\x01" + "23",
                  "\x01ff", "\x7f", "\u0085", "\u2028", "é", "😀", "\ud800", "*/ /*", "\\x41", "// c", "\n#define X 1", "",
                  "a" * 5000]

# directory name -> the namespace bindings derives (documented in docs/design.md §8)
HOSTILE_DIRS = {
    b"class": "model_class", b"2bert": "model_2bert", b"__init__": "init", b"_Upper": "Upper", b"linux": "model_linux",
    b"NULL": "model_NULL", b"a--b": "a_b", b"caf\xc3\xa9": "caf", b"bad\xff\xfeutf8": "bad_utf8", b"new\nline": "new_line",
    b'tab\tquote"back\\slash': "tab_quote_back_slash", b"\x1b[31m": "model_31m", b"-": "model", b"std": "model_std",
    b"modelexport_bindings": "model_modelexport_bindings", b"x" * 250: None,
    # names the headers the bindings include declare, or C and POSIX reserve (types *_t, macros, str/mem/wcs...)
    b"uint8_t": "model_uint8_t", b"size_t": "model_size_t", b"INT8_MAX": "model_INT8_MAX", b"SIZE_MAX": "model_SIZE_MAX",
    b"WEOF": "model_WEOF", b"wcslen": "model_wcslen", b"mbstate_t": "model_mbstate_t", b"max_align_t": "model_max_align_t",
    b"nullptr_t": "model_nullptr_t", b"main": "model_main", b"memcmp": "model_memcmp", b"btowc": "model_btowc",
    b"EOF": "model_EOF", b"tm": "model_tm",
}


class HostileNames(TempDirTest):
    """Any directory name or label yields headers that compile
    and mean what the package says."""

    def test_labels_are_the_exact_bytes_of_config_json(self):
        pkg = copy_package(self.path("labels"))
        cfg = load_json(os.path.join(pkg, "config.json"))
        cfg["id2label"] = {str(i): l for i, l in enumerate(HOSTILE_LABELS)}
        cfg["label2id"] = {}
        write(os.path.join(pkg, "config.json"), json.dumps(cfg))  # ensure_ascii: "\ud800" stays an escape
        run("bindings", pkg, "--header", self.path("labels.hpp"), check=0)
        write(self.path("main.cpp"), '#include "labels.hpp"\n#include <cstdio>\nint main() {\n'
              "    for (std::size_t i = 0; i < labels::label_count; ++i) {\n"
              '        for (char c : labels::id2label[i]) std::printf("%02x", static_cast<unsigned char>(c));\n'
              '        std::printf("\\n");\n    }\n'
              '    std::printf("%s\\n", std::string(labels::task).c_str());\n}\n')
        write(self.path("main.cpp"), read(self.path("main.cpp")).replace(b"<cstdio>", b"<cstdio>\n#include <string>"))
        cxx("main.cpp", "-o", "main", cwd=self.tmp)
        out = subprocess.run([self.path("main")], capture_output=True, text=True, check=True).stdout.splitlines()
        # A lone surrogate (Python keeps it, UTF-8 cannot hold it) becomes U+FFFD, as in docs/design.md §11.
        expected = [l.encode("utf-8", "surrogatepass").replace(b"\xed\xa0\x80", "\ufffd".encode()).hex() for l in HOSTILE_LABELS]
        self.assertEqual(out[:-1], expected)
        self.assertEqual(out[-1], load_json(os.path.join(pkg, "export_metadata.json"))["model"]["task"])

    def test_directory_names_give_valid_deterministic_namespaces(self):
        root = os.fsencode(self.tmp)
        for i, (name, expected) in enumerate(HOSTILE_DIRS.items()):
            with self.subTest(name=name):
                pkg = copy_package(os.path.join(root, name))
                h, e, s = (os.path.join(root, b"%d.%s" % (i, ext)) for ext in (b"b.hpp", b"e.hpp", b"S"))
                tool("bindings", pkg, "--header", h, check=0)
                tool("embed", pkg, "--output", s, "--header", e, check=0)
                ns = [l for l in read(h).decode().splitlines() if l.startswith("namespace ") and l != "namespace modelexport_bindings {"][0][10:-2]
                if expected is None:  # too long: cut, with a hash of the whole name
                    import hashlib
                    expected = "x" * 47 + "_" + hashlib.sha256(name).hexdigest()[:16]
                self.assertEqual(ns, expected)
                tu = os.path.join(root, b"tu.cpp")
                write(tu, b'#include "%d.b.hpp"\n#include "%d.e.hpp"\nstatic_assert(%s::model_size > 0);\n' % (i, i, ns.encode()))
                subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Werror", tu], check=True, capture_output=True)
                subprocess.run(["g++", "-c", s, "-o", os.path.join(root, b"s.o")], check=True, capture_output=True)

    def test_embedded_bytes_under_a_hostile_path_are_the_model(self):
        d = os.path.join(os.fsencode(self.tmp), b'q"u\\o\nte\xff')
        copy_package(d)
        tool("embed", d, "--output", self.path("data.S"), "--header", self.path("data.hpp"), check=0)
        ns = [l for l in read(self.path("data.hpp")).decode().splitlines() if l.startswith("namespace ")][0][10:-2]
        write(self.path("main.cpp"), '#include "data.hpp"\n#include <cstdio>\nint main() {\n'
              f"    std::fwrite({ns}::model_data(), 1, {ns}::model_size, stdout);\n}}\n")
        cxx("main.cpp", "data.S", "-o", "main", cwd=self.tmp)
        out = subprocess.run([self.path("main")], capture_output=True, check=True).stdout
        self.assertEqual(out, read(os.path.join(d, b"model.onnx")))

    def test_a_label_longer_than_gccs_constexpr_loop_limit_compiles(self):
        pkg = copy_package(self.path("longlabel"))
        cfg = load_json(os.path.join(pkg, "config.json"))
        cfg["id2label"], cfg["label2id"] = {"0": "a" * (300 << 10), "1": "b"}, {}
        write(os.path.join(pkg, "config.json"), json.dumps(cfg))
        run("bindings", pkg, "--header", self.path("long.hpp"), check=0)
        write(self.path("tu.cpp"), '#include "long.hpp"\nstatic_assert(longlabel::id2label[0].size() == 300 << 10);\n')
        subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Werror", self.path("tu.cpp")], check=True, capture_output=True)

    def test_explicit_namespace_must_be_usable(self):
        pkg = copy_package(self.path("pkg"))
        for ns in ("class", "a__b", "_X", "2x", "a-b", "caf\u00e9", "std", "uint8_t", "SIZE_MAX", "wcslen", "main"):
            with self.subTest(ns=ns):
                p = run("bindings", pkg, "--header", self.path("b.hpp"), "--namespace", ns)
                self.assertFailsWith(p, "usage", "--namespace", "not a usable C++ namespace name")
                self.assertFalse(os.path.exists(self.path("b.hpp")))


# --------------------------------------------------------------------------- JSON as Python reads it

CONFIG = b'{"model_type": "bert", "architectures": ["BertForSequenceClassification"], "x": %s}'
JSON_VALUES = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b'"\\ud800"', b'"\\udc00x"', b'"\\ud800\\udc00"',
               b'"\\ud800\\u0041"', b'"\\ud83d"', b'"\\\\ud800"', b'"\\\\\\ud800"', b'"\xed\xa0\x80"', b'"\xff"', b'"\xc0\xaf"',
               b'"\xf4\x90\x80\x80"', b'"\x00"', b'"\t"', b'"\x1f"', b'"\\u0000"', b"01", b"1.", b".5", b"-", b"+1", b"0x10",
               b"[1,]", b'{"a": 1,}', b"'s'", b"true", b"True", b"null", b"None", b"[" * 60 + b"]" * 60,
               b"[" * 70 + b"]" * 70, b'"\\x41"', b'"\\u12"', b'"\\uZZZZ"', b"12345678901234567890123", b"-0", b"1E5",
               b'"a\xe2\x80\xa8b"', b'{"a": 1, "a": 2}', '"😀"'.encode(), b'"\\/"', b'"\\a"', b"1 2", b"[1 2]", b"{1: 2}",
               b'{"a" 1}', b"\x0c1", b"1\x0c"]
JSON_DOCUMENTS = [CONFIG % v for v in JSON_VALUES] + [
    b"\xef\xbb\xbf" + CONFIG % b"1", CONFIG % b"1" + b" x", CONFIG % b"1" + b"\n", b" \t\r\n" + CONFIG % b"1",
    CONFIG % b"1" + b"\x00", CONFIG % b"1" + b"\x0c", b"\xc2\xa0" + CONFIG % b"1", (CONFIG % b"1").decode().encode("utf-16"),
    CONFIG % b"1" + b"\xef\xbb\xbf", CONFIG % b"1" + b"{}", b"\x00" + CONFIG % b"1"]
# Python's json accepts these; modelexport refuses them on purpose (docs/design.md §11):
# duplicate keys are ambiguous, NaN/Infinity and numbers beyond double are not JSON, nesting is bounded.
REFUSED_ON_PURPOSE = {b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"[" * 70 + b"]" * 70, b'{"a": 1, "a": 2}'}


def python_accepts(data):
    """What transformers does: open(..., encoding="utf-8") then json.loads."""
    try:
        json.loads(data.decode("utf-8"))
        return True
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


class PythonJson(TempDirTest):
    def test_never_accepts_what_python_rejects(self):
        src = self.copy_source(PREBUILT, self.path("src"))
        config = os.path.join(src, "config.json")
        for data in JSON_DOCUMENTS:
            with self.subTest(data=data[:200]):
                write(config, data)
                p = run("export", src, self.path("pkg"))
                shutil.rmtree(self.path("pkg"), ignore_errors=True)
                value = next((v for v in JSON_VALUES if data == CONFIG % v), None)
                if not python_accepts(data):
                    self.assertFailsWith(p, "invalid_input", config)
                elif value in REFUSED_ON_PURPOSE:
                    self.assertFailsWith(p, "invalid_input", config)
                else:
                    self.assertEqual(p.returncode, 0, p.stderr)

    def test_lone_surrogates_are_accepted_as_python_does(self):
        src = self.copy_source(PREBUILT, self.path("src"))
        tok = os.path.join(src, "tokenizer_config.json")
        cfg = load_json(tok)
        cfg["added_piece"] = "\ud83d"
        write(tok, json.dumps(cfg))
        run("export", src, self.path("pkg"), check=0)
        self.assertEqual(read(os.path.join(self.path("pkg"), "tokenizer_config.json")), read(tok), "copied byte for byte")


# --------------------------------------------------------------------------- verify during a commit

class VerifyDuringExport(TempDirTest):
    def test_verify_never_reports_a_change_while_a_reexport_commits(self):
        a = self.copy_source(PREBUILT, self.path("a"))
        b = self.copy_source(PREBUILT, self.path("b"))
        with open(os.path.join(b, "vocab.txt"), "a") as f:
            f.write("extra\n")
        pkg = self.path("pkg")
        run("export", a, pkg, check=0)
        import threading
        stop, failures = threading.Event(), []

        def exporter():
            try:
                for i in range(40):
                    run("export", (a, b)[i % 2], pkg, check=0)
            finally:
                stop.set()

        t = threading.Thread(target=exporter)
        t.start()
        count = 0
        while not stop.is_set():
            p = run("verify", pkg)
            count += 1
            if p.returncode != 0:
                failures.append(p.stdout + p.stderr)
        t.join()
        self.assertEqual(failures, [], f"{len(failures)} of {count} verify runs reported a change")
        self.assertGreater(count, 10)


# --------------------------------------------------------------------------- trust rules

class Contained(Table):
    """Rows whose export must also leave everything outside the output unchanged."""

    def check_contained(self, builder, code, out="pkg"):
        # check_row already compares the whole temporary directory before and after
        # (tree_snapshot): the output must not exist after a failure, nothing else may change.
        return self.check_row(builder, code)


def gone(pid):
    """True when the process no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class BadLinks(Contained):
    """Class 3: never lose or move a file outside the package."""

    def test_source_inside_the_output_directory(self):
        out = self.path("pkg")
        run("export", self.src(), out, check=0)
        src = self.copy_source(PREBUILT, os.path.join(out, "inner"))
        self.check_contained(lambda t: (export_args(src, out), [out, "is inside the output directory"]), "usage")
        self.assertTrue(os.path.isfile(os.path.join(src, "config.json")))

    def test_source_in_a_staging_name_beside_the_output(self):
        # .pkg.staging-* beside pkg are an export's leftovers, removed by the next export: never a source
        src = self.copy_source(PREBUILT, self.path(".pkg.staging-1"))
        before = tree_snapshot(self.tmp)
        self.assertFailsWith(run("export", src, self.path("pkg")), "usage", src, "is inside the output directory")
        self.assertEqual(tree_snapshot(self.tmp), before)

    def test_command_links_a_directory_out_of_its_output(self):
        victim_dir = os.path.dirname(write(self.path("victim", "model.onnx"), read(VALID_ONNX)))
        self.check_contained(lambda t: (export_args(TEXT, t.path("pkg"), "--strategy", "command", "--onnx-file", "sub/model.onnx",
                                                    "--command", f"ln -s {victim_dir} {{output}}/sub"),
                                        ["--command", "not inside {output}"]), "export_failed")

    def test_command_hard_links_a_file_into_its_output(self):
        victim = shutil.copy(VALID_ONNX, self.path("victim.onnx"))
        before = tree_snapshot(self.tmp, skip=["pkg"])
        run("export", TEXT, self.path("pkg"), "--strategy", "command", "--command", f"ln {victim} {{output}}/model.onnx", check=0)
        self.assertEqual(tree_snapshot(self.tmp, skip=["pkg"]), before)
        self.assertEqual(os.stat(self.path("pkg", "model.onnx")).st_nlink, 1)
        self.assertEqual(os.stat(victim).st_nlink, 1)

    def test_exporter_plants_a_link_in_the_staging_directory(self):
        body = writes_onnx_and("open(a.modules, 'w').write('{\"modules\": []}')\n"
                               "os.symlink('/etc/passwd', os.path.join(os.path.dirname(a.onnx), 'notes'))\n"
                               "os.symlink('/etc/passwd', os.path.join(os.path.dirname(a.onnx), 'vocab.txt'))\n")
        # vocab.txt is replaced by the source's copy (a new file, nothing written through the link); notes is refused
        self.check_contained(exporter_case(body, "notes", "symbolic link"), "io_error")

    def test_reexport_does_not_keep_links_of_the_previous_package(self):
        out = self.path("pkg")
        src = self.src()
        run("export", src, out, check=0)
        outside = shutil.copy(os.path.join(out, "config.json"), self.path("outside-config.json"))
        os.remove(os.path.join(out, "config.json"))
        os.link(outside, os.path.join(out, "config.json"))       # same bytes, shared inode
        vocab = shutil.copy(os.path.join(out, "vocab.txt"), self.path("outside-vocab.txt"))
        os.remove(os.path.join(out, "vocab.txt"))
        os.symlink(vocab, os.path.join(out, "vocab.txt"))          # same bytes, a link
        before = tree_snapshot(self.tmp, skip=["pkg"])
        run("export", src, out, check=0)
        for name in os.listdir(out):
            st = os.lstat(os.path.join(out, name))
            self.assertTrue(stat.S_ISREG(st.st_mode) and st.st_nlink == 1, name)
        after = tree_snapshot(self.tmp, skip=["pkg"])
        # the outside files keep their bytes; the hard-linked one is no longer shared
        self.assertEqual({k: v[:4] for k, v in after.items()}, {k: v[:4] for k, v in before.items()})
        self.assertEqual(os.stat(outside).st_nlink, 1)


class SpecialFiles(Contained):
    """Class 4: FIFOs, sockets, devices and directories where a file is expected never block a reader."""

    def fifo(self, path):
        if os.path.lexists(path):
            os.remove(path)
        os.mkfifo(path)
        return path

    def test_source_config_is_a_fifo(self):
        src = self.src()
        self.fifo(os.path.join(src, "config.json"))
        self.check_contained(lambda t: (export_args(src, t.path("pkg")), [os.path.join(src, "config.json"), "not a regular file"]),
                             "invalid_input")

    def test_source_tokenizer_is_a_fifo(self):
        src = self.src()
        self.fifo(os.path.join(src, "tokenizer.json"))
        self.check_contained(lambda t: (export_args(src, t.path("pkg")), ["tokenizer.json", "not a regular file"]), "invalid_input")

    def test_source_model_is_a_socket(self):
        import socket
        src = self.src()
        os.remove(os.path.join(src, "onnx", "model.onnx"))
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(os.path.join(src, "model.onnx"))
        self.check_contained(lambda t: (export_args(src, t.path("pkg")), ["model.onnx", "not a regular file"]), "invalid_input")

    def test_exporter_writes_a_fifo(self):
        self.check_contained(exporter_case(fake_exporter_arguments() + "os.mkfifo(a.onnx)\n", "{script}", "model.onnx as a FIFO"),
                             "export_failed")

    def test_command_output_links_to_a_device(self):
        self.check_contained(lambda t: (export_args(TEXT, t.path("pkg"), "--strategy", "command", "--command",
                                                    "ln -s /dev/zero {output}/model.onnx"),
                                        ["--command", "symbolic link"]), "export_failed")

    def test_lock_path_is_a_fifo(self):
        self.fifo(self.path(".pkg.lock"))
        self.check_contained(lambda t: (export_args(t.src(), t.path("pkg")), [t.path(".pkg.lock"), "is a FIFO"]), "io_error")

    def test_readers_refuse_a_fifo_in_a_package(self):
        out = self.path("pkg")
        run("export", self.src(), out, check=0)
        self.fifo(os.path.join(out, "model.onnx"))
        packed = self.fifo(self.path("packed.onnx"))
        for args in (["inspect", out], ["validate", out], ["verify", out], ["bindings", out, "--header", self.path("b.hpp")],
                     ["embed", out, "--output", self.path("e.cpp"), "--header", self.path("e.hpp")], ["unpack", packed, self.path("un")]):
            with self.subTest(args[0]):
                start = time.monotonic()
                p = run(*args, timeout=60)
                self.assertLess(time.monotonic() - start, 30)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("FIFO", p.stderr + p.stdout, args)

    def test_cache_reports_refuse_a_fifo_or_a_link_out_of_the_cache(self):
        # stats and verify name the entry (exit 8) instead of counting around it, or deleting it
        outside = write(self.path("outside", "victim"), "not the cache's")
        for sub, make in (("pending", lambda p: os.mkfifo(p)), ("ac", lambda p: os.symlink(outside, p)),
                          ("cas", lambda p: os.symlink(outside, p))):
            with self.subTest(sub):
                cache = self.path("cache-" + sub)
                os.makedirs(os.path.join(cache, sub))
                entry = os.path.join(cache, sub, "0" * 64)
                make(entry)
                for action in ("stats", "verify"):
                    start = time.monotonic()
                    p = run("cache", action, env={"MODELEXPORT_CACHE_DIR": cache}, timeout=60)
                    self.assertLess(time.monotonic() - start, 30)
                    self.assertFailsWith(p, "io_error", entry, "FIFO" if sub == "pending" else "symbolic link")
                    self.assertTrue(os.path.lexists(entry))
                self.assertEqual(read(outside), b"not the cache's")

    def test_timeout_values(self):
        src = self.src()
        for bad in ("abc", "0", "-5", "1e3", "", "5s"):
            with self.subTest(bad):
                self.assertFailsWith(run("export", src, self.path("pkg"), "--timeout", bad), "usage", "--timeout")
        for good in ("99999999999999999999999999999999", "0.5", "1800"):
            with self.subTest(good):
                run("export", src, self.path("pkg"), "--timeout", good, check=0)


class TrustPackageReaders(TempDirTest):
    """Every reader of a package opens it as verify does; pack refuses what is not
    self-contained; the command strategy takes files only from the {output} it created."""

    def package(self, name="pkg"):
        return copy_package(self.path(name))

    def assertRefused(self, p, *fragments):
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len([l for l in p.stderr.splitlines() if l.startswith("modelexport: error: ")]), 1, p.stderr)
        for f in fragments:
            self.assertIn(f, p.stderr)

    def test_readers_never_follow_a_link_out_of_the_package(self):
        secret = write(self.path("outside", "secret.json"), b'{"secret": "do not pack me"}')
        for name in ("tokenizer.json", "config.json", "model.onnx", "export_metadata.json"):
            with self.subTest(name):
                pkg = self.package("pkg-" + name.replace(".", "_"))
                target = secret if name.endswith(".json") else os.path.join(EXAMPLES, "text-classification", "model.onnx")
                os.remove(os.path.join(pkg, name))
                os.symlink(target, os.path.join(pkg, name))
                before = tree_snapshot(self.tmp)
                for args in (["pack", pkg, "--output", self.path("packed.onnx")],
                             ["embed", pkg, "--output", self.path("e.S"), "--header", self.path("e.hpp")],
                             ["bindings", pkg, "--header", self.path("b.hpp")], ["inspect", pkg]):
                    p = run(*args, timeout=120)
                    self.assertFailsWith(p, "invalid_input", os.path.join(pkg, name), "symbolic link")
                p = run("validate", pkg, "--json", timeout=300)
                self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
                failed = {c["id"]: c["message"] for c in json.loads(p.stdout)["checks"] if c["status"] == "fail"}
                self.assertIn("symbolic link", failed.get("package.entries", ""))
                self.assertEqual(tree_snapshot(self.tmp), before)

    def test_validate_and_inspect_refuse_a_fifo_tokenizer_or_metadata(self):
        for name in ("tokenizer.json", "export_metadata.json"):
            with self.subTest(name):
                pkg = self.package("fifo-" + name.replace(".", "_"))
                os.remove(os.path.join(pkg, name))
                os.mkfifo(os.path.join(pkg, name))
                start = time.monotonic()
                p = run("validate", pkg, timeout=120)
                self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
                self.assertNotIn(": valid for", p.stdout)
                self.assertIn("FIFO", p.stdout)
                self.assertFailsWith(run("inspect", pkg, timeout=120), "invalid_input", name, "FIFO")
                self.assertLess(time.monotonic() - start, 60)

    def test_pack_refuses_an_incomplete_or_not_self_contained_package(self):
        pkg = self.package()
        os.remove(os.path.join(pkg, "config.json"))
        os.mkfifo(os.path.join(pkg, "config.json"))
        self.assertFailsWith(run("pack", pkg, "--output", self.path("a.onnx"), timeout=60), "invalid_input", "config.json", "FIFO")
        pkg = self.package("ext")
        write(self.path("outside.bin"), bytes(range(256)) * 64)
        save_any(in_subgraph(onnx.load(os.path.join(pkg, "model.onnx")), "../../../outside.bin"), os.path.join(pkg, "model.onnx"))
        self.assertFailsWith(run("pack", pkg, "--output", self.path("b.onnx")), "invalid_input", "keeps its data in another file")
        pkg = self.package("inside")
        config = read(os.path.join(pkg, "config.json"))
        self.assertFailsWith(run("pack", pkg, "--output", os.path.join(pkg, "config.json")), "usage", "inside the package")
        self.assertEqual(read(os.path.join(pkg, "config.json")), config)
        self.assertFalse(os.path.exists(self.path("a.onnx")) or os.path.exists(self.path("b.onnx")))

    def test_embed_refuses_the_models_pack_refuses(self):
        # One rule for both: the model parses with every payload its size, and holds all its tensors.
        def truncated(pkg):
            write(os.path.join(pkg, "model.onnx"), read(os.path.join(pkg, "model.onnx"))[:5000])
        def data_file(pkg):
            write(os.path.join(pkg, "model.onnx_data"), b"x")
        def external_tensor(pkg):
            write(self.path("outside.bin"), bytes(range(256)) * 64)
            save_any(in_subgraph(onnx.load(os.path.join(pkg, "model.onnx")), "../../../outside.bin"), os.path.join(pkg, "model.onnx"))
        for name, mutate, fragment in (("truncated", truncated, "not a valid ONNX model"),
                                       ("data_file", data_file, "model.onnx_data: external data cannot be taken into one file by"),
                                       ("external_tensor", external_tensor, "keeps its data in another file")):
            with self.subTest(name):
                pkg = self.package("pkg-" + name)
                mutate(pkg)
                before = tree_snapshot(self.tmp)
                lines = []
                for args in (["pack", pkg, "--output", self.path("packed.onnx")],
                             ["embed", pkg, "--output", self.path("e.S"), "--header", self.path("e.hpp")]):
                    p = run(*args)
                    self.assertFailsWith(p, "invalid_input", pkg, fragment)
                    lines.append(p.stderr.splitlines()[0].split(pkg, 1)[1].replace(" " + args[0], " CMD"))
                self.assertEqual(lines[0], lines[1])
                self.assertEqual(tree_snapshot(self.tmp), before)

    def test_every_reader_refuses_an_incomplete_package(self):
        # pack, embed and bindings carry the export's record and config; inspect needs the ONNX files only.
        # A missing file is exit 5 naming it for all of them (validate: package.files, exit 7; verify: missing, exit 9).
        writers = lambda pkg: (["pack", pkg, "--output", self.path("packed.onnx")],
                               ["embed", pkg, "--output", self.path("e.cpp"), "--header", self.path("e.hpp")],
                               ["bindings", pkg, "--header", self.path("b.hpp")])
        for name in ("config.json", "export_metadata.json", "model.onnx"):
            with self.subTest(name):
                pkg = self.package("no-" + name.replace(".", "_"))
                os.remove(os.path.join(pkg, name))
                before = tree_snapshot(self.tmp)
                for args in writers(pkg) + ((["inspect", pkg],) if name == "model.onnx" else ()):
                    self.assertFailsWith(run(*args), "invalid_input", pkg + ": missing required file(s) " + name)
                self.assertEqual(tree_snapshot(self.tmp), before)
        self.assertEqual(run("inspect", self.path("no-export_metadata_json")).returncode, EXIT["ok"])  # any ONNX package
        p = run("validate", self.path("no-model_onnx"))
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        self.assertIn("package.files: " + self.path("no-model_onnx") + ": missing required file(s) model.onnx", p.stdout)
        self.assertIn("model.onnx: missing", run("verify", self.path("no-model_onnx"), check=EXIT["package_modified"]).stdout)

    def test_an_encoder_decoder_package_lacking_one_of_its_files_is_refused(self):
        for name in ("encoder_model.onnx", "decoder_model_merged.onnx"):
            with self.subTest(name):
                pkg = self.path("t5-no-" + name)
                shutil.copytree(os.path.join(EXAMPLES, "hf-t5"), pkg)
                os.remove(os.path.join(pkg, name))
                problem = pkg + ": missing required file(s) " + name
                for args in (["inspect", pkg], ["bindings", pkg, "--header", self.path("b.hpp")]):
                    self.assertFailsWith(run(*args), "invalid_input", problem)
                self.assertFalse(os.path.exists(self.path("b.hpp")))
                self.assertIn("package.files: " + problem, run("validate", pkg, check=EXIT["validation_failed"]).stdout)

    def test_bindings_refuse_a_recorded_task_config_contradicts(self):
        pkg = self.package()
        cfg = load_json(os.path.join(pkg, "config.json"))
        cfg["architectures"] = ["BertForTokenClassification"]
        write(os.path.join(pkg, "config.json"), json.dumps(cfg))
        problem = (os.path.join(pkg, "export_metadata.json") + ": model.task is text-classification but config.json's architectures "
                   "names BertForTokenClassification (token-classification)")
        self.assertFailsWith(run("bindings", pkg, "--header", self.path("b.hpp")), "invalid_input", problem)
        self.assertFalse(os.path.exists(self.path("b.hpp")))
        self.assertIn("task.recorded: " + problem, run("validate", pkg, check=EXIT["validation_failed"]).stdout)

    def test_unpack_refuses_a_model_with_external_data(self):
        model = in_subgraph(onnx.load(os.path.join(EXAMPLES, "text-classification", "model.onnx")), "../../../outside.bin").SerializeToString()
        import hashlib
        manifest = {"format_version": 1, "model": {"size": len(model), "sha256": hashlib.sha256(model).hexdigest()}, "files": {}}
        tail = onnx.ModelProto(metadata_props=[onnx.StringStringEntryProto(key="modelexport.pack", value=json.dumps(manifest))])
        write(self.path("packed.onnx"), model + tail.SerializeToString())
        self.assertFailsWith(run("unpack", self.path("packed.onnx"), self.path("un")), "invalid_input", "keeps its data in another file")
        self.assertFalse(os.path.exists(self.path("un")))

    def test_command_that_replaces_its_output_with_a_link_moves_nothing_in(self):
        victim = os.path.dirname(write(self.path("victim", "model.onnx"), read(VALID_ONNX)))
        before = tree_snapshot(self.path("victim"))
        p = run("export", TEXT, self.path("pkg"), "--strategy", "command", "--command", f"rmdir {{output}} && ln -s {victim} {{output}}")
        self.assertFailsWith(p, "export_failed", "--command", "replaced {output}", "symbolic link")
        self.assertEqual(tree_snapshot(self.path("victim")), before)
        self.assertFalse(os.path.exists(self.path("pkg")))
        p = run("export", TEXT, self.path("pkg"), "--strategy", "command", "--command",
                f"mv {{output}} {{output}}.old && mkdir {{output}} && cp {VALID_ONNX} {{output}}/model.onnx")
        self.assertFailsWith(p, "export_failed", "replaced {output}", "another directory")

    def test_no_staging_directory_is_left_behind(self):
        p = run("export", TEXT, self.path("pkg"), "--strategy", "command", "--command", f"cp {VALID_ONNX} {{output}}/model.onnx && chmod 000 {{output}}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(read(self.path("pkg", "model.onnx")), read(VALID_ONNX))
        os.chmod(self.path("pkg"), 0o555)
        run("export", TEXT, self.path("pkg"), "--strategy", "command", "--command", f"cp {VALID_ONNX} {{output}}/model.onnx", check=0)
        self.assertEqual([n for n in os.listdir(self.tmp) if ".staging-" in n], [])

    def test_command_model_that_is_a_link_is_refused(self):
        p = run("export", TEXT, self.path("pkg"), "--strategy", "command", "--command", f"ln -s {VALID_ONNX} {{output}}/model.onnx")
        self.assertFailsWith(p, "export_failed", "--command", "symbolic link")
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_hub_ref_that_links_out_of_the_repository_is_refused(self):
        hub = self.path("hub")
        repo = os.path.join(hub, "models--acme--tiny")
        snapshot = os.path.join(repo, "snapshots", "a" * 40)
        shutil.copytree(os.path.join(SOURCES, PREBUILT), snapshot)
        os.makedirs(os.path.join(repo, "refs"))
        write(self.path("elsewhere"), "a" * 40)
        os.symlink(self.path("elsewhere"), os.path.join(repo, "refs", "main"))
        p = run("export", "acme/tiny", self.path("pkg"), "--hf-hub-cache", hub)
        self.assertFailsWith(p, "invalid_input", os.path.join(repo, "refs", "main"), "links outside the repository folder")

    def test_inputs_refused_with_clear_messages(self):
        src = self.copy_source(PREBUILT, self.path("src"))
        write(self.path("outside", "x"), b"keep me")
        p = run("export", src, self.path("out", "pkg"), "--keep", "../../outside/x")
        self.assertFailsWith(p, "usage", "--keep", "../../outside/x")
        self.assertEqual(read(self.path("outside", "x")), b"keep me")
        self.assertFailsWith(run("export", src, ""), "usage", "OUTDIR", "is empty")
        self.assertFailsWith(run("plan", src, "--onnx-file", "../../x"), "usage", "--onnx-file", "../../x")

    def test_id2label_as_a_list_is_refused(self):
        src = self.copy_source(PREBUILT, self.path("src"))
        cfg = load_json(os.path.join(src, "config.json"))
        cfg["id2label"] = ["NEG", "POS"]
        write(os.path.join(src, "config.json"), json.dumps(cfg))
        self.assertFailsWith(run("export", src, self.path("pkg")), "invalid_input", "config.json", "id2label is array")
        pkg = self.package()
        write(os.path.join(pkg, "config.json"), json.dumps(cfg))
        p = run("validate", pkg, "--json")
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        failed = {c["id"]: c["message"] for c in json.loads(p.stdout)["checks"] if c["status"] == "fail"}
        self.assertIn("id2label is array", failed.get("config.model_type", ""))

    def test_a_tensor_data_type_outside_the_onnx_enum_is_refused(self):
        src = self.copy_source(PREBUILT, self.path("src"))
        path = os.path.join(src, "onnx", "model.onnx")
        model = onnx.load(path)
        model.graph.initializer[0].data_type = 999
        save_any(model, path)
        self.assertFailsWith(run("export", src, self.path("pkg")), "invalid_input", "data_type 999")
        pkg = self.package()
        save_any(model, os.path.join(pkg, "model.onnx"))
        p = run("validate", pkg)
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        self.assertIn("data_type 999", p.stdout)


class Signals(TempDirTest):
    """Class 5: SIGINT, SIGTERM and SIGHUP stop the exporter's whole process group,
    remove the staging directory and the lock, exit 128 + signal, keep the previous package."""

    EXPORTER = fake_exporter_arguments() + (
        "pids = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pids')\n"
        "if os.fork() == 0:\n"
        "    open(pids + '.grandchild', 'w').write(str(os.getpid()))\n"
        "    while True: time.sleep(1)\n"
        "open(a.onnx, 'wb').write(b'partial')\n"
        "open(pids + '.exporter', 'w').write(str(os.getpid()))\n"
        "while True: time.sleep(1)\n")

    def check_signal(self, signo):
        out = self.path("pkg")
        run("export", os.path.join(SOURCES, PREBUILT), out, check=0)
        previous = tree_snapshot(out)
        script = write(self.path("fake_exporter.py"), self.EXPORTER)
        before = tree_snapshot(self.tmp, skip=["pkg"])
        # The signal's default disposition, whoever started the tests: under nohup SIGHUP is ignored, and
        # modelexport keeps an inherited SIG_IGN (tools/modelexport.cpp), so it would never arrive.
        proc = subprocess.Popen([TOOL, "export", TEXT, out, "--model", "modeling.py:build", "--exporter-script", script],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signo, signal.SIG_DFL))
        pid_files = [self.path("pids.exporter"), self.path("pids.grandchild")]
        deadline = time.monotonic() + 60
        while not all(os.path.exists(f) and read(f) for f in pid_files):
            self.assertIsNone(proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
            self.assertLess(time.monotonic(), deadline, "the fake exporter did not start")
            time.sleep(0.05)
        pids = [int(read(f)) for f in pid_files]
        self.addCleanup(lambda: [kill_recorded_pid(f) for f in pid_files])
        proc.send_signal(signo)
        _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 128 + signo, err)
        self.assertIn(f"interrupted by signal {signo}", err)
        time.sleep(0.2)
        for pid in pids:
            self.assertTrue(gone(pid), f"process {pid} of the exporter's group still runs")
        for f in pid_files:
            os.remove(f)
        self.assertEqual(tree_snapshot(self.tmp, skip=["pkg"]), before, "staging directory or lock left behind")
        self.assertEqual(tree_snapshot(out), previous, "the previous package changed")

    def test_sigint(self):
        self.check_signal(signal.SIGINT)

    def test_sigterm(self):
        self.check_signal(signal.SIGTERM)

    def test_sighup(self):
        self.check_signal(signal.SIGHUP)

    def test_sigkill_takes_the_exporter_along_and_the_next_export_cleans_up(self):
        """SIGKILL cannot be caught: the exporter and what it started die with modelexport (the kernel's
        parent-death signal, and a watcher that kills the exporter's process group), and the next export
        of the target removes the staging directory and lock left."""
        out = self.path("pkg")
        script = write(self.path("fake_exporter.py"), self.EXPORTER)
        proc = subprocess.Popen([TOOL, "export", TEXT, out, "--model", "modeling.py:build", "--exporter-script", script, "--no-cache"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid_files = [self.path("pids.exporter"), self.path("pids.grandchild")]
        self.addCleanup(lambda: [kill_recorded_pid(f) for f in pid_files])
        deadline = time.monotonic() + 60
        while not all(os.path.exists(f) and read(f) for f in pid_files):
            self.assertIsNone(proc.poll(), "modelexport ended before its exporter started")
            self.assertLess(time.monotonic(), deadline, "the fake exporter did not start")
            time.sleep(0.05)
        exporter, grandchild = int(read(pid_files[0])), int(read(pid_files[1]))
        proc.kill()
        proc.wait(timeout=30)
        while not (gone(exporter) and gone(grandchild)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(gone(exporter), "the exporter outlived modelexport")
        self.assertTrue(gone(grandchild), "a process the exporter started outlived modelexport")
        left = sorted(n for n in os.listdir(self.tmp) if n.startswith(".pkg."))
        self.assertTrue(left, "a killed export leaves its staging directory and lock")
        run("export", os.path.join(SOURCES, PREBUILT), out, check=0)
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n.startswith(".pkg.")), [])

    def test_sigkill_takes_along_what_left_the_commands_group(self):
        """A process the user's command started in a session of its own (setsid: out of the command's
        process group, as a daemon leaves it) dies too when modelexport is killed by SIGKILL: it still
        carries the command's environment mark, and the watcher kills every process that does."""
        pid_file = self.path("escaped.pid")
        command = (f"setsid sh -c 'echo $$ > \"$0\"; exec sleep 300' {shlex.quote(pid_file)} "
                   "</dev/null >/dev/null 2>&1 & sleep 300")
        proc = subprocess.Popen([TOOL, "export", TEXT, self.path("pkg"), "--strategy", "command", "--command", command,
                                 "--no-cache"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(kill_recorded_pid, pid_file)
        deadline = time.monotonic() + 60
        while not (os.path.exists(pid_file) and read(pid_file)):
            self.assertIsNone(proc.poll(), "modelexport ended before the command started its sleeper")
            self.assertLess(time.monotonic(), deadline, "the command did not start")
            time.sleep(0.05)
        escaped = int(read(pid_file))
        self.assertFalse(gone(escaped))
        with open(f"/proc/{escaped}/stat") as f:
            sid = int(f.read().rsplit(")", 1)[1].split()[3])
        self.assertEqual(sid, escaped, "the sleeper is in a session of its own")
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while not gone(escaped) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(gone(escaped), "a process that left the command's process group outlived modelexport")


class Names(Contained):
    """Class 10: names and paths."""

    ODD = "odd dir #1 $x:y\\z"

    def test_depfile_with_odd_names_is_read_by_ninja(self):
        src = self.copy_source(PREBUILT, self.path(self.ODD))
        gen = self.path("gen.d")
        subprocess.run([TOOL, "export", src, "pkg", "--depfile", gen, "--quiet"], cwd=self.tmp, check=True)
        write(self.path("build.ninja"),
              "rule copydep\n  command = cp gen.d pkg.d && touch pkg/model.onnx\n  depfile = pkg.d\n  deps = gcc\n"
              "build pkg/model.onnx: copydep\n")
        ninja = lambda *a: subprocess.run(["ninja", *a], cwd=self.tmp, capture_output=True, text=True, check=True).stdout
        ninja()
        deps = ninja("-t", "deps", "pkg/model.onnx")
        self.assertIn(os.path.join(src, "config.json") + "\n", deps)
        self.assertIn("no work to do", ninja("-n"))
        os.utime(os.path.join(src, "tokenizer.json"))
        self.assertNotIn("no work to do", ninja("-n"))

    def test_depfile_with_a_newline_in_a_name(self):
        src = self.copy_source(PREBUILT, self.path("new\nline"))
        self.check_contained(lambda t: (export_args(src, t.path("pkg"), "--depfile", t.path("pkg.d")), ["newline", "cannot be named in a depfile"]),
                             "usage")
        self.assertFalse(os.path.exists(self.path("pkg.d")))

    def test_name_near_255_bytes(self):
        src = self.src()
        long_out = self.path("p" * 250)
        run("export", src, long_out, check=0)
        run("export", src, long_out, check=0)
        self.assertEqual(sorted(os.listdir(self.tmp)), sorted([os.path.basename(src), "p" * 250]))
        self.check_contained(lambda t: (export_args(src, t.path("q" * 256)), ["q" * 256, "File name too long"]), "io_error",
                             out="q" * 256)

    def test_dangling_symlink_at_the_lock_path(self):
        os.symlink(self.path("elsewhere", "made-by-modelexport"), self.path(".pkg.lock"))
        self.check_contained(lambda t: (export_args(t.src(), t.path("pkg")), [t.path(".pkg.lock"), "symbolic link"]), "io_error")
        self.assertFalse(os.path.exists(self.path("elsewhere")))

    @unittest.skipUnless(MOUNT_OK, NO_MOUNT)
    def test_output_is_a_mount_point(self):
        out = self.path("mnt")
        os.makedirs(out)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", out], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", out])
        src = self.src()
        self.check_contained(lambda t: (export_args(src, out), [out, "mount point"]), "io_error", out="mnt")
        run("export", src, os.path.join(out, "pkg"), check=0)  # the hint's way works

    def test_validate_report_escapes_control_characters_in_names(self):
        pkg = self.path("bad\nname\x1b[31m")
        shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
        os.remove(os.path.join(pkg, "config.json"))  # failed checks name the directory and the file
        p = run("validate", pkg, check=EXIT["validation_failed"])
        self.assertFalse(any(ord(c) < 0x20 and c != "\n" for c in p.stdout), repr(p.stdout))
        self.assertIn("package.files: " + self.path("bad\\x0aname\\x1b[31m") + ": missing required file(s) config.json\n", p.stdout)
        self.assertIn(self.path("bad\\x0aname\\x1b[31m") + ": INVALID for", p.stdout)

    def test_inspect_text_escapes_control_characters_in_names(self):
        pkg = self.path("bad\nname\x1b[31m")
        shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
        text = run("inspect", pkg, check=0).stdout
        self.assertFalse(any(ord(c) < 0x20 and c != "\n" for c in text), repr(text))
        self.assertIn("model: " + self.path("bad\\x0aname\\x1b[31m"), text)

    def test_pictures_escape_control_characters_in_node_names(self):
        import xml.etree.ElementTree as ET
        name = '/enc\x01oder/la"yer\n<1>&\\/Add'
        model = tiny_model([helper.make_node("Add", ["x", "x"], ["y"], name=name)])
        src = self.src()
        os.remove(os.path.join(src, "onnx", "model.onnx"))
        write(os.path.join(src, "model.onnx"), model.SerializeToString())
        out = self.path("pkg")
        run("export", src, out, "--task", "text-classification", check=None)
        target = out if os.path.isdir(out) else os.path.join(src, "model.onnx")
        graphml = run("inspect", target, "--format", "graphml", check=0).stdout
        ET.fromstring(graphml)  # well-formed XML 1.0
        self.assertFalse(any(ord(c) < 0x20 and c not in "\n\t" for c in graphml))
        dot = run("inspect", target, "--format", "dot", check=0).stdout
        subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=True)
        text = run("inspect", target, check=0).stdout
        self.assertFalse(any(ord(c) < 0x20 and c != "\n" for c in text), repr(text))


class Limits(Contained):
    """Class 12: a failing big copy is an I/O error, not std::terminate."""

    def test_big_copy_under_a_file_size_limit(self):
        src = self.src()
        with open(os.path.join(src, "onnx", "model.onnx_data"), "wb") as f:
            f.truncate(70 * MIB)
        def build(t):
            return ["export", src, t.path("pkg")], ["model.onnx_data", "File too large"]
        # the limit is inherited by modelexport; writes past 16 MiB fail with EFBIG (SIGXFSZ is ignored)
        real_run = run
        def limited(*args, **kw):
            return subprocess.run(["prlimit", f"--fsize={16 * MIB}", TOOL, *map(str, args)], capture_output=True, text=True,
                                  timeout=kw.get("timeout", 300))
        globals()["run"] = limited
        try:
            self.check_contained(build, "io_error")
        finally:
            globals()["run"] = real_run


for _cls in (BadConfig, BadModel, BadSource, BadOutput, BadExporter, BadMetadata, BadPackage, BadPack, BadExternalData):
    _cls.generate()
del _cls  # else unittest would load the last class twice


if __name__ == "__main__":
    unittest.main()

class NamedOutputs(TempDirTest):
    """Files a user names for modelexport to write: never a special file replaced, never a package's own
    file overwritten, no option silently ignored."""

    def package(self):
        pkg = self.path("pkg")
        shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
        return pkg

    def test_a_fifo_at_an_output_path_is_refused_not_replaced(self):
        pkg, fifo = self.package(), self.path("out.fifo")
        os.mkfifo(fifo)
        for args in (["validate", pkg, "--runtime", "none", "--report", fifo],
                     ["bindings", pkg, "--header", fifo],
                     ["pack", pkg, "--output", fifo]):
            with self.subTest(args[0]):
                p = run(*args)
                self.assertEqual(p.returncode, EXIT["io_error"], p.stdout + p.stderr)
                self.assertIn(fifo + ": is a FIFO, not a regular file; refusing to replace it", p.stderr)
                self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))

    def test_bindings_and_embed_never_overwrite_the_package(self):
        pkg = self.package()
        before = read(os.path.join(pkg, "config.json"))
        for args in (["bindings", pkg, "--header", os.path.join(pkg, "config.json")],
                     ["embed", pkg, "--output", self.path("m.cpp"), "--header", os.path.join(pkg, "config.json")]):
            with self.subTest(args[0]):
                p = run(*args)
                self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
                self.assertIn("config.json: is a file of the package", p.stderr)
        self.assertEqual(read(os.path.join(pkg, "config.json")), before)
        self.assertEqual(run("verify", pkg).returncode, EXIT["ok"])
        # Beside the package under its own name, as the Meson template keeps it: fine.
        self.assertEqual(run("bindings", pkg, "--header", os.path.join(pkg, "pkg_model.hpp")).returncode, EXIT["ok"])

    def test_cache_max_size_must_be_a_size(self):
        for bad in ("", "abc", "5X", "-1", " 5"):
            with self.subTest(bad):
                p = run("cache", "prune", "--max-size", bad, env={"MODELEXPORT_CACHE_DIR": self.path("cache")})
                self.assertFailsWith(p, "usage", "--max-size", f"'{bad}' is not a size")
        self.assertEqual(run("cache", "prune", "--max-size", "10G", env={"MODELEXPORT_CACHE_DIR": self.path("cache")}).returncode,
                         EXIT["ok"])

    def test_library_is_refused_where_no_htp_export_runs(self):
        p = run("export", os.path.join(SOURCES, PREBUILT), self.path("out"), "--library", "sentence-transformers", "--no-cache")
        self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
        self.assertIn("--library: sentence-transformers is how the htp exporter loads the model; the prebuilt strategy", p.stderr)
        self.assertFalse(os.path.exists(self.path("out")))

