"""Regenerate tests/data/tensorrt-10.3.0-api.json and cuda-python-12.6.2-runtime-names.txt: the
API TensorRT 10.3's and cuda-python 12.6's Python modules really have, read from the published
wheels (no GPU needed). tests/test_tensorrt_contract.py checks the TensorRT stand-in in tests/standin
and every TensorRT call fts-edge makes against them: the class that owns each name, the arity of
each method and the value of each enum member.

    python tests/tools/api_names.py WORKDIR      # downloads two wheels with pip; needs a C compiler

TensorRT: the bindings' shared object (tensorrt_cu12_bindings 10.3.0) links against libnvinfer,
libnvonnxparser and libnvinfer_plugin, whose wheel PyPI does not host (its package fetches them
from NVIDIA's index). It needs only ten C entry points of them (the builder, runtime, refitter and
parser factories, the plugin registry, two version and init calls), none called at import, so
this script compiles stand-in libraries that define those ten and returns null from each, and
imports the real bindings against them: every class, method, property and enum then reads as
TensorRT publishes it, each method with its pybind11 signature(s) from its docstring. Nothing
is run through the stand-in libraries. cuda-python: the runtime module imports without a driver,
so dir() and its enums give it.
"""
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"

# the C entry points the bindings take from TensorRT's libraries (nm -D --undefined-only tensorrt.so)
_ENTRY_POINTS = """#include <stddef.h>
void* createInferBuilder_INTERNAL(void* logger, int version) { return NULL; }
void* createInferRefitter_INTERNAL(void* engine, void* logger, int version) { return NULL; }
void* createInferRuntime_INTERNAL(void* logger, int version) { return NULL; }
void* getPluginRegistry(void) { return NULL; }
void* getBuilderPluginRegistry(int capability) { return NULL; }
int initLibNvInferPlugins(void* logger, const char* ns) { return 0; }
void* createNvOnnxParserRefitter_INTERNAL(void* refitter, void* logger, int version) { return NULL; }
void* createNvOnnxParser_INTERNAL(void* network, void* logger, int version) { return NULL; }
int getNvOnnxParserVersion(void) { return 10300; }
"""

# run inside a process that imports the real bindings: the API as JSON on stdout
_DUMP = r"""
import inspect, json, re, sys
sys.path.insert(0, sys.argv[1])
import tensorrt_bindings as trt

SIG = re.compile(r"^(?:\d+\.\s*)?(\w+)\((.*)\)(?:\s*->\s*(.+))?$")

def params(text):
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[(" and 1 or 0
        depth -= ch in "])" and 1 or 0
        if ch == "," and depth == 0:
            out.append(cur.strip()); cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return [{"name": p.split(":")[0].split("=")[0].strip(), "default": "=" in p} for p in out]

def signatures(obj, name):
    found = []
    for line in (getattr(obj, "__doc__", "") or "").splitlines():
        m = SIG.match(line.strip())
        if m and m.group(1) == name:
            found.append({"params": params(m.group(2)), "returns": (m.group(3) or "").strip()})
    return found

api = {"version": trt.__version__, "classes": {}, "functions": {}}
for cname, cls in sorted(vars(trt).items()):
    if cname.startswith("_"):
        continue
    if not inspect.isclass(cls):
        if callable(cls):
            api["functions"][cname] = {"signatures": signatures(cls, cname)}
        continue
    members = getattr(cls, "__members__", None)
    entry = {"bases": [b.__name__ for b in cls.__mro__[1:] if b.__module__.startswith("tensorrt")],
             "enum": {k: int(v) for k, v in members.items()} if isinstance(members, dict) else None,
             "members": {}}
    for mname in dir(cls):
        if mname.startswith("__") and mname != "__init__":
            continue
        if entry["enum"] is not None and mname in entry["enum"]:
            continue
        try:
            raw = inspect.getattr_static(cls, mname)
        except AttributeError:
            continue
        val = getattr(cls, mname, None)
        if isinstance(raw, property):
            entry["members"][mname] = {"kind": "property"}
        elif inspect.isclass(val):
            entry["members"][mname] = {"kind": "class"}
        elif type(val).__module__.startswith("tensorrt") and hasattr(val, "__int__"):
            entry["members"][mname] = {"kind": "enum_value", "value": int(val), "type": type(val).__name__}
        elif callable(val):
            entry["members"][mname] = {"kind": "method", "signatures": signatures(val, mname)}
        else:
            entry["members"][mname] = {"kind": "attribute"}
    api["classes"][cname] = entry
print(json.dumps(api, sort_keys=True))
"""


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tensorrt_api(work: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(work),
                    "tensorrt-cu12-bindings==10.3.0"], check=True)
    whl = next(work.glob("tensorrt_cu12_bindings-10.3.0-*.whl"))
    zipfile.ZipFile(whl).extractall(work / "bindings")
    libs = work / "entry-points"
    libs.mkdir(exist_ok=True)
    (libs / "entry_points.c").write_text(_ENTRY_POINTS)
    for name in ("libnvinfer.so.10", "libnvonnxparser.so.10", "libnvinfer_plugin.so.10"):
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(libs / name), str(libs / "entry_points.c")], check=True)
    out = subprocess.run([sys.executable, "-c", _DUMP, str(work / "bindings")], capture_output=True, text=True,
                         check=True, env={**os.environ, "LD_LIBRARY_PATH": str(libs)}).stdout
    api = json.loads(out)
    api["source"] = {"wheel": whl.name, "sha256": sha(whl), "made_by": "tests/tools/api_names.py"}
    (DATA / "tensorrt-10.3.0-api.json").write_text(json.dumps(api, sort_keys=True, separators=(",", ":")) + "\n")


def cuda_names(work: Path) -> None:
    target = work / "cuda-python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
                    "cuda-python==12.6.2.post1"], check=True)
    code = ("from cuda.bindings import runtime as rt\n"
            "names = {n for n in dir(rt) if not n.startswith('_')}\n"
            "for e in ('cudaMemcpyKind', 'cudaError_t'):\n"
            "    names |= {f'{e}.{m}' for m in dir(getattr(rt, e)) if m.startswith('cuda')}\n"
            "print('\\n'.join(sorted(names)))\n")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(target)}, capture_output=True,
                         text=True, check=True).stdout
    head = ("# dir(cuda.bindings.runtime) of cuda-python 12.6.2.post1, with the members of cudaMemcpyKind and\n"
            "# cudaError_t. Made by tests/tools/api_names.py (imports without a GPU or driver).\n")
    (DATA / "cuda-python-12.6.2-runtime-names.txt").write_text(head + out)


if __name__ == "__main__":
    w = Path(sys.argv[1] if len(sys.argv) > 1 else "api-names-work")
    w.mkdir(parents=True, exist_ok=True)
    tensorrt_api(w)
    cuda_names(w)
