"""Prompt templates as files, rendered by one function.

Templates use `string.Template` placeholders (`$name`), so JSON braces and
percent signs in a template need no escaping. A missing variable is an error.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

__all__ = ["PromptError", "render", "template_names"]

_SUFFIXES = (".txt", ".md")


class PromptError(LookupError):
    """A template is missing or a variable it needs was not given."""


@cache
def _load(name: str) -> Template:
    root = resources.files(__name__)
    for suffix in _SUFFIXES:
        path = root / f"{name}{suffix}"
        if path.is_file():
            return Template(path.read_text(encoding="utf-8"))
    raise PromptError(f"no prompt template '{name}' in prompts/ (looked for {name}.txt, .md)")


def template_names() -> list[str]:
    """Every template shipped in prompts/."""
    root = resources.files(__name__)
    return sorted(p.name.rsplit(".", 1)[0] for p in root.iterdir()
                  if p.name.endswith(_SUFFIXES))


def render(name: str, **variables: object) -> str:
    """The template `name` with `variables` substituted; trailing whitespace trimmed."""
    template = _load(name)
    try:
        text = template.substitute({k: str(v) for k, v in variables.items()})
    except KeyError as exc:
        raise PromptError(f"prompt '{name}' needs variable {exc.args[0]!r}") from None
    return text.strip() + "\n"
