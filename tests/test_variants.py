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


@pytest.mark.parametrize("name", ["cpu", "cuda-sm75", "upstream-cpu", "baseline-cuda-sm90", "upstream-cuda-sm90a"])
def test_variant_names_round_trip(name):
    from builder.variants import variant_from_name

    assert variant_from_name(name).name == name


def test_unknown_variant_name():
    from builder.variants import variant_from_name

    with pytest.raises(UsageError, match="unknown variant 'gpu'"):
        variant_from_name("gpu")
