"""The code blocks of README.rst, with their line numbers, told apart by language.

A block is what reStructuredText makes a literal block: the indented lines after a
paragraph ending in ``::`` (or a lone ``::``), or the body of a ``.. code-block::``
/ ``.. code::`` directive. tests/test_readme.py runs them, tests/test_nginx.py
serves the nginx one, and the wheel job (tests/wheel_job.py) runs the ``pip install``
lines; this module only finds and classifies them, so that a block added anywhere in
the README is found, and a failure names its line.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["README", "Block", "blocks", "command_lines", "of_kind"]

README = Path(__file__).resolve().parent.parent / "README.rst"

#: The first word of a shell command line in the README.
SHELL_COMMANDS = frozenset(
    {"pip", "pip3", "python", "python3", "gunicorn", "tox", "flask", "waitress-serve", "cd"}
)
_DIRECTIVE = re.compile(r"^\s*\.\. (code-block|code|sourcecode)::\s*(\w*)\s*$")
_OTHER_DIRECTIVE = re.compile(r"^\s*\.\. [\w-]+::")
_NGINX = re.compile(r"^\s*(location|server|upstream|proxy_\w+)\b.*[;{]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One code block: ``line`` is the README line of its first code line (1-based)."""

    line: int
    text: str
    language: str  # what a code-block directive says, or ""

    @property
    def where(self) -> str:
        return f"README.rst:{self.line}"

    @property
    def kind(self) -> str:
        """``python``, ``doctest`` (a ``>>>`` session), ``shell``, ``nginx`` or ``unknown``."""
        if self.language in ("python", "doctest", "shell", "nginx"):
            return self.language
        if self.language in ("bash", "sh", "console"):
            return "shell"
        if self.language == "pycon" or self.text.lstrip().startswith(">>> "):
            return "doctest"
        first = self.text.lstrip().split(None, 1)[0] if self.text.strip() else ""
        if first in SHELL_COMMANDS:
            return "shell"
        if _NGINX.search(self.text):
            return "nginx"
        if is_python(self.text):
            return "python"
        return "unknown"


def is_python(text: str) -> bool:
    """Whether ``text`` compiles as a module, or as the body of a WSGI application."""
    for source in (text, as_function_body(text)):
        try:
            compile(source, "<README>", "exec")
        except SyntaxError:
            continue
        return True
    return False


def as_function_body(text: str) -> str:
    """``text`` as the body of ``app(environ, start_response)`` (a fragment with ``return``)."""
    return "def app(environ, start_response):\n" + textwrap.indent(text, "    ")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def blocks(path: Path = README) -> list[Block]:
    """Every literal block of ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line)
        opens = directive is not None or (
            line.rstrip().endswith("::") and not _OTHER_DIRECTIVE.match(line)
        )
        index += 1
        if not opens:
            continue
        intro_indent = _indent(line)
        # Blank lines, and a directive's options (":linenos:"), come before the code.
        while index < len(lines) and (
            not lines[index].strip()
            or (directive is not None and lines[index].strip().startswith(":"))
        ):
            index += 1
        if index >= len(lines) or _indent(lines[index]) <= intro_indent:
            continue  # "::" with nothing indented after it: not a block
        start = index
        block_indent = _indent(lines[start])
        while index < len(lines) and (
            not lines[index].strip() or _indent(lines[index]) >= block_indent
        ):
            index += 1
        body = lines[start:index]
        while body and not body[-1].strip():
            body.pop()
        language = directive.group(2) if directive is not None else ""
        found.append(Block(start + 1, textwrap.dedent("\n".join(body)) + "\n", language))
    return found


def of_kind(kind: str, path: Path = README) -> list[Block]:
    return [block for block in blocks(path) if block.kind == kind]


def command_lines(block: Block) -> list[list[str]]:
    """A shell block's commands as argument lists: continuations joined, ``&&`` split."""
    joined = block.text.replace("\\\n", " ")
    commands: list[list[str]] = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while "&&" in words:
            at = words.index("&&")
            commands.append(words[:at])
            words = words[at + 1 :]
        if words:
            commands.append(words)
    return commands
