"""Runtime check through Optimum: ORTModelFor<Task>.from_pretrained(PKG) and one inference.

Usage: optimum_check.py PKGDIR ORT_CLASS
Prints one JSON line {"runtime": "optimum", "version": ..., "outputs": {name: {"shape": [...]}}}.
Exit 1 with "optimum_check: error: <Optimum's own message>" on stderr when loading or running fails.
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        print("usage: optimum_check.py PKGDIR ORT_CLASS", file=sys.stderr)
        return 2
    pkg, cls_name = sys.argv[1], sys.argv[2]
    try:
        import optimum
        import optimum.onnxruntime as ort_models
        from transformers import AutoConfig

        cls = getattr(ort_models, cls_name)
        model = cls.from_pretrained(pkg, local_files_only=True)
        inputs = dummy_inputs(pkg, model, AutoConfig.from_pretrained(pkg, local_files_only=True))
        out = model(**inputs)
        shapes = {k: {"shape": list(v.shape)} for k, v in out.items() if hasattr(v, "shape")}
        print(json.dumps({"runtime": "optimum", "version": getattr(optimum, "__version__", "?"), "outputs": shapes}))
        return 0
    except Exception as e:  # report the runtime's own message, whatever it raised
        print(f"optimum_check: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def dummy_inputs(pkg, model, config):
    names = set(getattr(model, "input_names", {}) or {})
    if "pixel_values" in names:
        import torch
        size = getattr(config, "image_size", 224)
        return {"pixel_values": torch.zeros(1, getattr(config, "num_channels", 3), size, size)}
    if "input_values" in names:
        import torch
        return {"input_values": torch.zeros(1, 16000)}
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(pkg, local_files_only=True)
    return dict(tok("the movie was great and i loved it", return_tensors="pt"))


if __name__ == "__main__":
    sys.exit(main())
