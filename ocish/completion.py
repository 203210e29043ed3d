"""Tab completion for the interactive shell: command names and aliases, then each command's own
arguments as the registry (ocish/commands.py) completes them; paths for `load`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from ocish.commands import ALIASES, BY_NAME
from runtime.errors import OcishError

if TYPE_CHECKING:
    from ocish.shell import Shell


class ShellCompleter(Completer):
    def __init__(self, shell: "Shell") -> None:
        self.shell = shell
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if not words or text.endswith(" "):
            words.append("")
        prefix = words[-1]
        if len(words) == 1:
            candidates = sorted(ALIASES)
        else:
            cmd = BY_NAME.get(ALIASES.get(words[0], ""))
            if cmd is None:
                from ocish.commands import resolve
                try:
                    cmd = resolve(words[0])
                except OcishError:
                    return
            if cmd.name == "load":
                yield from self.paths.get_completions(Document(prefix, len(prefix)), event)
                return
            if cmd.name == "help":
                candidates = sorted(BY_NAME) if len(words) == 2 else []
            else:
                candidates = cmd.complete(self.shell.dbg, words[1:-1]) if cmd.complete else []
        for c in candidates:
            if c.startswith(prefix):
                yield Completion(c, start_position=-len(prefix))
