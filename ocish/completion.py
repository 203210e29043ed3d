"""Tab completion for the interactive shell: commands, then each command's own arguments
(stage names, items, mount destinations, inspect topics, container ids, signals, paths)."""
from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from ocish.inspect import TOPICS

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
            candidates = sorted(self.shell.aliases)
        else:
            command = self.shell.aliases.get(words[0], "")
            if command == "load":
                yield from self.paths.get_completions(Document(prefix, len(prefix)), event)
                return
            candidates = self.arguments(command, words[1:-1])
        for c in candidates:
            if c.startswith(prefix):
                yield Completion(c, start_position=-len(prefix))

    def arguments(self, command: str, before: list[str]) -> list[str]:
        """What may come next after `command` and the words `before` the one being typed."""
        d = self.shell.dbg
        stages = [s.name for s in d.engine.stages] if d.engine else []
        if command == "break":
            if not before:
                return stages + ["mount"]
            if before == ["mount"] and d.setup:
                return [m.get("destination", "") for m in d.setup.ctx.spec.get("mounts") or []]
            if len(before) == 1 and d.engine:
                return [item for s, item in d.engine.steps if s.name == before[0] and item]
            return []
        if command == "explain" and not before:
            return stages
        if command == "inspect":
            return list(TOPICS) + ["all"] if not before else ["--json", "--pid"]
        if command in ("state", "ps") and not before:
            from runtime import state
            return state.list_ids(d.root)
        if command in ("watch", "trace") and not before:
            return ["on", "off"]
        if command == "catch" and not before:
            return ["exec", "off"]
        if command == "kill":
            return ["--all"] + [s.name for s in signal.Signals]
        if command == "help" and not before:
            return sorted(self.shell.commands)
        if command == "info" and not before:
            return ["breakpoints"]
        if command == "delete" and not before:
            return [str(b.number) for b in d.breakpoints] + ["-f"]
        if command == "quit":
            return ["--keep"]
        if command == "exec":
            if before[-1:] == ["--id"]:
                from runtime import state
                return state.list_ids(d.root)
            return ["-d", "--user", "--cwd", "--env", "--id"]
        return []
