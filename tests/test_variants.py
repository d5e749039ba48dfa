"""Variant naming and CUDA arch validation against the installed nvcc."""

from __future__ import annotations

import shutil

import pytest

from builder.__main__ import main
from builder.errors import UsageError
from builder.variants import Variant, nvcc_archs, parse_arch, select_variants, validate_archs

needs_nvcc = pytest.mark.skipif(not shutil.which("nvcc"), reason="nvcc is not installed")


@pytest.mark.parametrize("text, arch", [("75", "75"), ("sm_86", "86"), ("sm90", "90"), (" 90a ", "90a"), ("SM_120", "120")])
def test_parse_arch(text, arch):
    assert parse_arch(text) == arch


@pytest.mark.parametrize("text", ["7.5", "compute_75", "sm_", "ampere", ""])
def test_parse_arch_rejects(text):
    with pytest.raises(UsageError, match="is not of the form"):
        parse_arch(text)


def test_variant_names():
    assert Variant(None).name == "cpu"
    assert Variant("75").name == "cuda-sm75"
    assert Variant("75").as_flavor("upstream").name == "upstream-cuda-sm75"
    assert Variant(None, "baseline").name == "baseline-cpu"


def test_unknown_arch_lists_the_valid_ones():
    with pytest.raises(UsageError) as err:
        validate_archs(["61"], ["75", "80", "90"])
    assert "CUDA arch 61 is not supported" in err.value.message
    assert err.value.hint == "use one of: 75, 80, 90"


def test_arch_suffix_needs_its_base():
    validate_archs(["90a"], ["75", "90"])
    with pytest.raises(UsageError):
        validate_archs(["100a"], ["75", "90"])


@needs_nvcc
def test_installed_nvcc_lists_real_archs():
    archs = nvcc_archs()
    assert archs and all(a[:2].isdigit() for a in archs)


@needs_nvcc
def test_select_variants_from_comma_lists_and_repeats():
    names = [v.name for v in select_variants(["75,90", "75"], cpu=True, flavors=("upstream",))]
    assert names == ["cpu", "cuda-sm75", "cuda-sm90", "upstream-cpu", "upstream-cuda-sm75", "upstream-cuda-sm90"]


@needs_nvcc
def test_build_refuses_an_arch_nvcc_cannot_target(capsys):
    assert main(["build", "--cuda-arch", "35"]) == 2
    err = capsys.readouterr().err
    assert "error: CUDA arch 35 is not supported by the installed nvcc" in err
    assert "hint: use one of: 75" in err


def test_no_flag_without_gpu_means_cpu(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi
    assert [v.name for v in select_variants([], cpu=False)] == ["cpu"]


@pytest.mark.parametrize("name", ["cpu", "cuda-sm75", "upstream-cpu", "baseline-cuda-sm90", "upstream-cuda-sm90a",
                                  "fork-0010-cuda-sm90", "fork-0003-cpu"])
def test_variant_names_round_trip(name):
    from builder.variants import variant_from_name

    assert variant_from_name(name).name == name


def test_unknown_variant_name():
    from builder.variants import variant_from_name

    with pytest.raises(UsageError, match="unknown variant 'gpu'"):
        variant_from_name("gpu")


def test_a_series_prefix_variant_builds_the_patches_up_to_its_number(tmp_path):
    from builder.build import fork_commit, series_for
    from builder.variants import variant_from_name

    patches = tmp_path / "patches"
    patches.mkdir()
    names = ["0001-a.patch", "0002-b.patch", "0003-c.patch"]
    for n in names:
        (patches / n).write_text(f"{n}\n")
    (patches / "series").write_text("0001-a.patch baseline\n0002-b.patch\n0003-c.patch\n")
    variant = variant_from_name("fork-0002-cpu")
    assert [p.name for p in series_for(variant, patches)] == names[:2]
    assert [p.name for p in series_for(variant_from_name("cpu"), patches)] == names
    with pytest.raises(UsageError, match="the series has no patch 0004"):
        series_for(variant_from_name("fork-0004-cpu"), patches)
    # its --version names the prefix, so its llama-bench rows are told apart from the fork's
    prefix, full = fork_commit(variant, series_for(variant, patches)), fork_commit(variant_from_name("cpu"), series_for(variant_from_name("cpu"), patches))
    assert prefix.startswith("experts-first-fork-0002-") and full.startswith("experts-first-0.1.0+") and prefix != full


def test_build_refuses_a_patch_number_the_series_lacks(capsys):
    assert main(["build", "--cpu", "--series-until", "0099"]) == 2
    err = capsys.readouterr().err
    assert "error: the series has no patch 0099" in err and "hint: use one of 0001, 0002" in err


def test_series_until_adds_a_variant_per_backend(capsys, monkeypatch):
    import argparse

    from builder.build import selected_variants

    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: the CPU
    args = argparse.Namespace(cuda_arch=[], cpu=True, upstream=False, baseline=True, series_until="0010")
    assert [v.name for v in selected_variants(args)] == ["cpu", "baseline-cpu", "fork-0010-cpu"]
