"""share/tasks.json against Optimum's own task knowledge (optimum-onnx's TasksManager in the pinned
environment), so the two cannot drift apart: every task the table names for the htp exporter is one
optimum-onnx exports, the table's outputs are Optimum's, and every model type the table infers a task
for is one optimum-onnx exports for that task."""
import json
import os
import subprocess
import unittest

from common import REPO

PYTHON = os.environ.get("MODELEXPORT_PYTHON", "")

OPTIMUM_VIEW = r'''
import json
from optimum.exporters.tasks import TasksManager
from optimum.exporters.onnx.base import OnnxConfig
import optimum.exporters.onnx.model_configs  # registers the configurations
supported = {}
for model_type, exporters in TasksManager._SUPPORTED_MODEL_TYPE.items():
    for task in exporters.get("onnx", {}):
        supported.setdefault(task, []).append(model_type)
outputs = {task: list(axes) for task, axes in OnnxConfig._TASK_TO_COMMON_OUTPUTS.items()}
print(json.dumps({"supported": supported, "outputs": outputs}))
'''

# Our names for Optimum's tasks: the decoder row is Optimum's text-generation-with-past, the Whisper
# row its automatic-speech-recognition-with-past; text2text-generation's inputs/outputs are the encoder's.
OPTIMUM_NAME = {"text-generation": "text-generation-with-past"}
ENCODER_ONLY_OUTPUTS = {"text2text-generation", "automatic-speech-recognition-with-past"}
# Model types the project's own exporters take beyond optimum-onnx (docs/compatibility.md's matrix says so).
BEYOND_OPTIMUM = {("text2text-generation", "umt5")}


def normal(model_type):
    """Optimum spells some model types with '-' where config.json has '_' (m2m_100 / m2m-100)."""
    return model_type.replace("_", "-")


@unittest.skipUnless(PYTHON, "MODELEXPORT_PYTHON (the pinned environment) is not set")
class OptimumAgreement(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        p = subprocess.run([PYTHON, "-c", OPTIMUM_VIEW], capture_output=True, text=True, timeout=600, check=True)
        cls.optimum = json.loads(p.stdout.strip().splitlines()[-1])
        with open(os.path.join(REPO, "share", "tasks.json"), encoding="utf-8") as f:
            cls.rows = json.load(f)["tasks"]

    def optimum_task(self, row):
        return OPTIMUM_NAME.get(row["name"], row["name"])

    def test_every_task_is_one_optimum_exports(self):
        for row in self.rows:
            with self.subTest(row["name"]):
                self.assertIn(self.optimum_task(row), self.optimum["supported"])

    def test_the_outputs_are_optimums(self):
        for row in self.rows:
            if row["name"] in ENCODER_ONLY_OUTPUTS or row["with_past"]:
                continue
            with self.subTest(row["name"]):
                common = self.optimum["outputs"].get(row["name"])
                self.assertIsNotNone(common, "Optimum names no common outputs for " + row["name"])
                self.assertEqual(row["outputs"], [o for o in common if o in row["outputs"] + row["optional_outputs"]])
                self.assertTrue(set(row["outputs"]) <= set(common))

    def test_inferred_model_types_export_that_task_in_optimum(self):
        for row in self.rows:
            for rule in row["model_type_suffixes"]:
                for model_type in rule["model_types"]:
                    if (row["name"], model_type) in BEYOND_OPTIMUM:
                        continue
                    with self.subTest(task=row["name"], model_type=model_type):
                        self.assertIn(normal(model_type), map(normal, self.optimum["supported"][self.optimum_task(row)]))


if __name__ == "__main__":
    unittest.main()
