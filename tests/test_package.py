import importlib
import subprocess
import sys

import pytest

import trl_safe
from trl_safe import cli


def test_every_public_name_resolves_to_the_object_of_its_module():
    for name in trl_safe.__all__:
        module = importlib.import_module(trl_safe._EXPORTS[name])
        value = getattr(trl_safe, name)
        assert value is getattr(module, name), name
        assert getattr(value, "__name__", name) == name, name  # classes and functions under their own name


def test_cli_lists_every_script_and_each_has_a_parser_and_a_main(capsys):
    assert cli.main([]) == 0
    listed = capsys.readouterr().out
    for name in cli.SCRIPTS:
        assert f"  {name} " in listed
        script = importlib.import_module(f"trl_safe.scripts.{name}")
        assert callable(script.main)
        assert script.make_parser(prog=f"trl-safe {name}").prog == f"trl-safe {name}"
    assert cli.main(["no_such_script"]) == 2
    assert "unknown script 'no_such_script'" in capsys.readouterr().err


def test_cli_runs_the_script_with_its_own_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ppo_lag", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: trl-safe ppo_lag") and "--cost_model_name_or_path" in help_text
    assert "--window_size" in help_text


def test_unknown_name_is_an_attribute_error():
    try:
        trl_safe.NoSuchTrainer  # noqa: B018
    except AttributeError as error:
        assert "NoSuchTrainer" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_lazy():
    # `import trl_safe` must not drag in trl or matplotlib: every process of a distributed launch pays for it.
    code = "import sys, trl_safe; print(sorted(m for m in ('trl', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
