"""Makes torch unimportable in a Python process started with this folder on PYTHONPATH: the test
of the device half (tests/test_device_half.py) runs fts-edge as a device without torch would.
A real venv without torch (FTS_EDGE_DEVICE_PYTHON, which .ci/run makes) is the stronger check;
this one runs everywhere."""
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (torch is blocked for this test)", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
