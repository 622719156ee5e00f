"""modelexport beside optimum-cli on a fixed broad sample of tiny genuine transformers models.

One (model_type, task) pair per task and per kind of input (text, vision, audio, multimodal), each
built at test time by sweep.py: exported by optimum-cli's main_export and by `modelexport export`,
every shared ONNX file within 1e-4 of optimum-cli's on the same inputs in ONNX Runtime, modelexport's
package valid under `validate --strict`, and loading in Optimum's ORTModel class and transformers.js
wherever optimum-cli's package loads there. The sample is split in three test entries that run in
parallel, each exporting its optimum-cli side in one interpreter.

Each entry also checks its rows of docs/coverage.md (per task and input: the model types exported,
validated and compared here) against what it produced; `sweep.py --coverage` rewrites the table.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import sweep
from common import REPO, TOOL, load_json

PYTHON = os.environ.get("MODELEXPORT_PYTHON", "")
COVERAGE = os.path.join(REPO, "docs", "coverage.md")

# The fixed sample: every pair's row in docs/coverage.md belongs to exactly one group. (CLIP's
# feature-extraction is left out: optimum-cli's package of it, CLIPModel's outputs, loads in no ORTModel
# class either, and validate says so.)
GROUPS = {
    "Text": ["bert:text-classification", "distilbert:token-classification", "roberta:question-answering",
             "bert:multiple-choice", "albert:fill-mask", "bert:feature-extraction",
             "gpt2:text-generation-with-past", "qwen2:text-generation",
             # a multimodal checkpoint as a causal LM: its decoder's sizes are in text_config
             "gemma3:text-generation-with-past", "t5:text2text-generation-with-past",
             "pegasus:text2text-generation", "t5:feature-extraction-with-past"],
    "Vision": ["vit:image-classification", "segformer:semantic-segmentation", "yolos:object-detection",
               "dpt:depth-estimation", "vit:masked-im", "swin2sr:image-to-image", "dinov2:feature-extraction",
               "vision-encoder-decoder:image-to-text", "vision-encoder-decoder:image-to-text-with-past",
               "pix2struct:image-to-text", "pix2struct:image-to-text-with-past"],
    "AudioMultimodal": ["wav2vec2:audio-classification", "wav2vec2:audio-frame-classification",
                        "wav2vec2:audio-xvector", "wav2vec2:automatic-speech-recognition", "whisper:automatic-speech-recognition",
                        "speech_to_text:automatic-speech-recognition-with-past", "moonshine:automatic-speech-recognition-with-past",
                        "hubert:feature-extraction",
                        "clip:zero-shot-image-classification", "owlvit:zero-shot-object-detection",
                        # raw numbers in: a time series, a Decision Transformer's trajectory (optimum-cli's package of
                        # it runs in no client, as written it computes modelexport's numbers: docs/tasks.md)
                        "patchtst:time-series-forecasting", "decision_transformer:reinforcement-learning",
                        # several models that generate together, one more than optimum-cli writes (the merged decoder)
                        "musicgen:text-to-audio"],
}


def has_optimum():
    if not PYTHON:
        return False
    return subprocess.run([PYTHON, "-c", "import transformers, optimum.exporters.onnx"], capture_output=True).returncode == 0


needs_optimum = unittest.skipUnless(has_optimum(), "no transformers/optimum for %s (scripts/python-env makes the "
                                                   "pinned environment)" % (PYTHON or "MODELEXPORT_PYTHON"))


def committed_rows():
    """{(task, input): model types} of the table in docs/coverage.md."""
    rows = {}
    with open(COVERAGE) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and line.startswith("| ") and cells[0] not in ("Task",) and not cells[0].startswith("-"):
                rows[(cells[0], cells[1])] = [t.strip() for t in cells[2].split(",") if t.strip()]
    return rows


class SweepGroup:
    """One entry of the sample: the sweep runs once for the class; each test reads its records."""
    GROUP = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-sweep-")
        out = os.path.join(cls.tmp, "records.json")
        p = subprocess.run([PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep.py"), cls.tmp,
                            "--modelexport", TOOL, "--validate", "--json", out, "--pairs", *GROUPS[cls.GROUP]],
                           capture_output=True, text=True, timeout=1800)
        cls.log = p.stderr[-4000:]
        cls.records = load_json(out) if os.path.exists(out) else []

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_pair_matches_optimum_cli(self):
        self.assertEqual(len(self.records), len(GROUPS[self.GROUP]), self.log)
        for record in self.records:
            with self.subTest("%s %s" % (record["model_type"], record["task"])):
                self.assertEqual(record.get("optimum"), "ok", json.dumps(record))
                self.assertEqual(record["verdict"], "match", json.dumps(record))
                self.assertEqual(record.get("validate"), "ok", json.dumps(record))
                self.assertLess(record["max_diff"], sweep.TOLERANCE)
                for client, status in record["clients"].items():  # wherever optimum-cli's package loads, ours does
                    if status["optimum-cli"] == "ok":
                        self.assertEqual(status["modelexport"], "ok", client)

    def test_the_committed_coverage_table_is_what_this_sample_gives(self):
        produced = sweep.coverage_rows(self.records)
        committed = committed_rows()
        mine = {(r["task"], r.get("modality", "other")) for r in self.records}
        self.assertEqual({key: committed.get(key) for key in mine}, {key: produced.get(key) for key in mine},
                         "docs/coverage.md differs from this run: regenerate it with sweep.py --coverage")


@needs_optimum
class Text(SweepGroup, unittest.TestCase):
    GROUP = "Text"


@needs_optimum
class Vision(SweepGroup, unittest.TestCase):
    GROUP = "Vision"


@needs_optimum
class AudioMultimodal(SweepGroup, unittest.TestCase):
    GROUP = "AudioMultimodal"


class CoverageTable(unittest.TestCase):
    """The table lists the fixed sample's rows and nothing else (each group checks its own rows' contents)."""

    def test_every_row_belongs_to_a_pair_of_the_sample(self):
        tasks = {pair.split(":", 1)[1] for pairs in GROUPS.values() for pair in pairs}
        for task, _ in committed_rows():
            self.assertIn(task, tasks)


if __name__ == "__main__":
    unittest.main()
