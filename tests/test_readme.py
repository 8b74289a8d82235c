"""The README's configuration table names every key, its flag and its real default."""

from dataclasses import fields
from pathlib import Path

from mogaqnn.config import SearchConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    head = README.split("## ")[0]
    assert "make demo" in head and "make test" in head


def test_readme_documents_every_config_key_with_its_default():
    defaults = SearchConfig()
    rows = {line.split("|")[1].strip(" `"): line for line in README.splitlines()
            if line.startswith("| `")}  # fmt: skip
    for f in fields(SearchConfig):
        assert f.name in rows, f"README lacks config key {f.name}"
        value = getattr(defaults, f.name)
        if isinstance(value, tuple):
            shown = ",".join(map(str, value))
        elif value is None:
            shown = "none"
        elif isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = str(value)
        assert shown in rows[f.name], f"README shows a wrong default for {f.name}"
        assert "--" + f.name.replace("_", "-") in rows[f.name]
