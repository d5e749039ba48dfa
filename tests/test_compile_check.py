"""`build --compile-only-touched`: which CUDA objects it picks, and a real check failing on a broken .cu."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import pytest

from builder.build import compile_touched
from builder.compile_check import ObjectFile, cuda_objects, select_objects
from builder.errors import BuildError
from builder.pin import load_pin
from builder.settings import Settings
from builder.variants import Variant

CUDA_DIR = "ggml/src/ggml-cuda"
SOURCES = {
    f"{CUDA_DIR}/touched.cu": '#include "common.cuh"\n',
    f"{CUDA_DIR}/small.cu": '#include "common.cuh"\n',
    f"{CUDA_DIR}/large.cu": '#include "common.cuh"\n' + "// padding\n" * 50,
    f"{CUDA_DIR}/api.cu": '#include "ggml.h"\n',
    f"{CUDA_DIR}/template-instances/inst.cu": '#include "../common.cuh"\n',
    f"{CUDA_DIR}/indirect.cu": '#include "other.cuh"\n',
    f"{CUDA_DIR}/other-common.cu": '#include "sub/common.cuh"\n',
    f"{CUDA_DIR}/common.cuh": "#pragma once\n",
    f"{CUDA_DIR}/other.cuh": '#include "common.cuh"\n',
    f"{CUDA_DIR}/sub/common.cuh": "#pragma once\n",
    "ggml/include/ggml.h": "#pragma once\n",
}


def _objects(src: Path) -> list[ObjectFile]:
    for rel, text in SOURCES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    return [ObjectFile(rel, f"{rel}.o") for rel in SOURCES if rel.endswith(".cu")]


def test_compile_commands_give_the_cuda_objects_only(tmp_path):
    src, build = tmp_path / "src", tmp_path / "build"
    build.mkdir()
    entries = [
        {"directory": str(build), "file": str(src / CUDA_DIR / "mmid.cu"),
         "output": f"{build}/ggml/src/ggml-cuda/CMakeFiles/ggml-cuda.dir/mmid.cu.o"},
        {"directory": str(build), "file": f"{src}/{CUDA_DIR}/template-instances/x.cu",
         "output": "ggml/src/ggml-cuda/CMakeFiles/ggml-cuda.dir/template-instances/x.cu.o"},
        {"directory": str(build), "file": str(src / "src/llama.cpp"), "output": "src/CMakeFiles/llama.dir/llama.cpp.o"},
    ]
    (build / "compile_commands.json").write_text(json.dumps(entries))
    assert cuda_objects(build, src) == [
        ObjectFile(f"{CUDA_DIR}/mmid.cu", "ggml/src/ggml-cuda/CMakeFiles/ggml-cuda.dir/mmid.cu.o"),
        ObjectFile(f"{CUDA_DIR}/template-instances/x.cu", "ggml/src/ggml-cuda/CMakeFiles/ggml-cuda.dir/template-instances/x.cu.o"),
    ]


def test_touched_sources_then_direct_includers_smallest_first_bounded(tmp_path):
    objects = _objects(tmp_path)
    touched = [f"{CUDA_DIR}/touched.cu", f"{CUDA_DIR}/common.cuh", "ggml/include/ggml.h", "src/llama.cpp"]
    picked = select_objects(objects, touched, tmp_path, max_includers=3)
    assert [o.source for o in picked.touched] == [f"{CUDA_DIR}/touched.cu"]
    # direct includers of common.cuh (by the folder or a relative path) and of ggml.h (through the include path);
    # not other.cuh's includer (indirect) nor sub/common.cuh's (another header of the same name)
    assert [o.source for o in picked.includers] == [f"{CUDA_DIR}/api.cu", f"{CUDA_DIR}/small.cu",
                                                   f"{CUDA_DIR}/template-instances/inst.cu"]
    assert [o.source for o in picked.left_out] == [f"{CUDA_DIR}/large.cu"]
    assert picked.targets == [f"{CUDA_DIR}/touched.cu.o", f"{CUDA_DIR}/api.cu.o", f"{CUDA_DIR}/small.cu.o",
                              f"{CUDA_DIR}/template-instances/inst.cu.o"]


def test_no_includers_when_bound_is_zero_or_no_header_is_touched(tmp_path):
    objects = _objects(tmp_path)
    assert select_objects(objects, [f"{CUDA_DIR}/common.cuh"], tmp_path, 0).left_out
    none = select_objects(objects, ["src/llama.cpp", "common/common.h"], tmp_path, 8)
    assert none.targets == [] and none.left_out == []


def _patch_appending(pristine: Path, rel: str, text: str) -> str:
    """A git-style patch that appends `text` to the tree's file `rel`."""
    old = (pristine / rel).read_text().splitlines(keepends=True)
    diff = difflib.unified_diff(old, old + [text], f"a/{rel}", f"b/{rel}")
    return f"From: t <t@t>\nSubject: [PATCH] test\n\n---\ndiff --git a/{rel} b/{rel}\n" + "".join(diff)


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.parametrize("appended, compiles", [("static int experts_first_ok = 1;\n", True),
                                                ("static int experts_first_broken = ;\n", False)])
def test_compile_check_of_a_scratch_series(cuda_check_setup, tmp_path, appended, compiles):
    tree, opts, cache = cuda_check_setup
    rel = f"{CUDA_DIR}/arange.cu"
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-test.patch").write_text(_patch_appending(tree.path, rel, appended))
    (patches / "series").write_text("0001-test.patch\n")
    settings = Settings(load_pin().path, cache, None, None, None, True)
    if compiles:
        picked = compile_touched(tree, Variant("75"), settings, opts, patches_dir=patches)
        assert [o.source for o in picked.touched] == [rel] and picked.includers == []
        log = (cache / "build" / "cuda-sm75" / "build.log").read_text()
        assert re.findall(r"Building \S+ object (\S+)", log) == [f"{CUDA_DIR}/CMakeFiles/ggml-cuda.dir/arange.cu.o"]
        assert "Linking" not in log
    else:
        with pytest.raises(BuildError) as err:
            compile_touched(tree, Variant("75"), settings, opts, patches_dir=patches)
        assert "arange.cu" in err.value.message and "experts_first_broken" in err.value.message
