"""The users' CI workflow (ci/experts-first.yml): valid for GitHub Actions, and its commands are ours."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from builder.__main__ import make_parser
from builder.variants import variant_from_name

WORKFLOW = Path(__file__).resolve().parent.parent / "ci" / "experts-first.yml"
# values for the workflow's expressions and shell variables, so its command lines can be parsed
STAND_INS = {r"\$\{\{[^}]*\}\}": "", r'"\$\(nproc\)"': "2", r'"\$VARIANT"': "cuda-sm90", r"\$models": "--model m.gguf"}


def builder_commands(workflow: dict) -> list[list[str]]:
    """The argument lists of every `python -m builder` call in the workflow's run steps."""
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for pattern, value in STAND_INS.items():
                script = re.sub(pattern, value, script)
            commands += [shlex.split(line.split("-m builder", 1)[1]) for line in script.splitlines() if "-m builder" in line]
    return commands


def check_schema(workflow: Path) -> subprocess.CompletedProcess:
    # check-jsonschema ships the schema store's GitHub workflow schema: no network needed
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(workflow)], capture_output=True, text=True)


def test_workflow_matches_github_actions_schema():
    result = check_schema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    assert check_schema(broken).returncode == 1


def test_build_matrix_covers_cpu_and_the_cuda_archs():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    include = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
    variants = {entry["variant"] for entry in include}
    assert variants == {"cpu", "cuda-sm75", "cuda-sm86", "cuda-sm89", "cuda-sm90", "cuda-sm120"}
    for name in variants:
        variant_from_name(name)  # each is a variant the builder knows


def test_wheels_job_builds_each_target_after_its_build_and_uploads_the_wheels():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    build, wheels = workflow["jobs"]["build"], workflow["jobs"]["wheels"]
    assert wheels["needs"] == "build"
    assert wheels["strategy"]["matrix"]["include"] == build["strategy"]["matrix"]["include"]
    run_lines = [line for step in wheels["steps"] for line in step.get("run", "").splitlines()]
    wheel = next(shlex.split(line.split("-m builder", 1)[1]) for line in run_lines if "-m builder wheel" in line)
    out = wheel[wheel.index("--out") + 1]
    upload = next(step for step in wheels["steps"] if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == f"{out}/*.whl"
    assert any("'.[wheel]'" in line for line in run_lines)  # scikit-build-core, the wheel's build backend


def test_builder_commands_parse():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    commands = builder_commands(workflow)
    assert {c[0] for c in commands} >= {"build", "regress", "wheel"}
    parser = make_parser()
    for words in commands:
        parser.parse_args(words)  # exits (SystemExit) on an unknown option
