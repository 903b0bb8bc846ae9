"""What a command did, in the one shape every `tflkit` command answers with (`--json` prints it):

    {"command": "bench", "ok": false, "results": [{...one object per item done...}],
     "errors": [{"item": "m.fp16.tflite", "message": "delegate_failed: ..."}], ...extra keys of the command}

`ok` is true exactly when the exit code is 0: 0 when everything asked for succeeded, 1 when some item failed (the
rest done and reported), or the code the command set (2 for a usage error). Here in the bottom layer so that every
command answers with it, android_bench's (which imports nothing above the bottom) included.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

JSON_HELP = 'print one JSON object on stdout: {"command", "ok", "results", "errors"} (see `tflkit --help`)'


def item_error(item, message: str) -> dict:
    return {"item": None if item is None else str(item), "message": message}


def plain(value):
    """A result as JSON-able data: dataclasses as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


@dataclass
class Reply:
    command: str | None
    results: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    code: int | None = None  # None: 1 when an item failed, else 0
    extra: dict = field(default_factory=dict)  # a command's own keys after the four common ones (a study's counts)

    @property
    def exit_code(self) -> int:
        return self.code if self.code is not None else (1 if self.errors else 0)

    def to_dict(self) -> dict:
        return {"command": self.command, "ok": self.exit_code == 0, "results": [plain(r) for r in self.results],
                "errors": self.errors, **self.extra}
