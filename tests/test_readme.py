"""The README says what is true: its quoted builder commands parse, and its exit codes are the CLI's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from builder import errors
from builder.__main__ import COMMANDS, make_parser

README = (Path(__file__).parent.parent / "README.md").read_text()
PREFIX = ["python", "-m", "builder"]


def quoted_commands() -> list[list[str]]:
    """Every `python -m builder ...` of the README's shell blocks, as arguments, comments dropped."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a line ending in a backslash goes on
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:3] == PREFIX:
                    commands.append(words[3:])
    return commands


def test_the_readme_quotes_every_command():
    assert {c[0] for c in quoted_commands() if c[0] in COMMANDS} == set(COMMANDS)


@pytest.mark.parametrize("argv", quoted_commands(), ids=" ".join)
def test_quoted_commands_parse(argv):
    args = make_parser().parse_args(argv)  # argparse exits (fails the test) on an unknown option or value
    assert args.command == argv[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command_parses(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        make_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0 and "usage: python -m builder " + command in capsys.readouterr().out


def test_top_level_help_names_the_default_op_of_test_ops(capsys):
    with pytest.raises(SystemExit):
        make_parser().parse_args(["--help"])
    assert "(default: our MUL_MAT_ID_SKIP, MUL_MAT_ID_HOT and MOE_HOST_SEND cases)" in " ".join(capsys.readouterr().out.split())
    assert make_parser().parse_args(["test-ops"]).op == "MUL_MAT_ID_SKIP,MUL_MAT_ID_HOT,MOE_HOST_SEND"


def test_exit_codes_in_the_readme_are_the_clis():
    listed = re.search(r"exit non-zero\n\((.*?)\)\.", README, re.S).group(1)
    codes = {int(code): text for code, text in re.findall(r"(\d+) ([^,]+)", listed.replace("\n", " "))}
    classes = {cls.exit_code: cls for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.BuilderError) and cls is not errors.BuilderError}
    assert set(codes) == set(classes) | {1, 130}  # 1: test-ops' failed or missing cases; 130: Ctrl-C
    assert "test-ops" in codes[1] and "interrupted" in codes[130]
    for code, word in ((2, "usage"), (3, "fetch"), (4, "hash"), (5, "patch"), (6, "build"), (7, "command"), (8, "regress")):
        assert word in codes[code] and word in (classes[code].__doc__ + classes[code].__name__).lower()
