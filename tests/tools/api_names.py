"""Regenerate tests/data/tensorrt-10.3.0-names.txt and cuda-python-12.6.2-runtime-names.txt: the
names TensorRT 10.3's and cuda-python 12.6's Python APIs really have, read from the published
wheels (no GPU needed). The TensorRT stand-in in tests/standin may define only names from these
lists (tests/test_tensorrt_contract.py checks it), so code that calls a name TensorRT 10.3 lacks
fails against the stand-in.

    python tests/tools/api_names.py WORKDIR      # downloads two wheels with pip into WORKDIR

TensorRT: the bindings' shared object cannot be imported without libnvinfer, but pybind11 keeps
every Python-visible name as a string literal in it; the identifiers among its strings are the
list. cuda-python: the runtime module imports without a driver, so dir() and its enums give it.
"""
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tensorrt_names(work: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                    "3.10", "--platform", "manylinux_2_17_x86_64", "-d", str(work), "tensorrt-cu12-bindings==10.3.0"],
                   check=True)
    whl = next(work.glob("tensorrt_cu12_bindings-10.3.0-*.whl"))
    blob = zipfile.ZipFile(whl).read("tensorrt_bindings/tensorrt.so")
    toks = set()
    for s in re.findall(rb"[\x20-\x7e]{3,}", blob):
        m = re.search(r"([A-Za-z_][A-Za-z0-9_]{1,})$", s.decode())
        if m and not m.group(1).startswith(("_Z", "__")) and len(m.group(1)) <= 60:
            toks.add(m.group(1))
    head = (f"# Identifiers in TensorRT 10.3.0's Python bindings (tensorrt_bindings/tensorrt.so of the wheel\n"
            f"# {whl.name}, sha256 {sha(whl)}).\n"
            "# Made by tests/tools/api_names.py. pybind11 names are string literals in the binary; the linker\n"
            "# merges a string into a longer one that ends with it, so a name may appear only as a suffix.\n")
    (DATA / "tensorrt-10.3.0-names.txt").write_text(head + "\n".join(sorted(toks)) + "\n")


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
    tensorrt_names(w)
    cuda_names(w)
