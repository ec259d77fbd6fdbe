"""`dlrun schema`: the config's JSON Schema for editors, printed or written to a file. No TensorFlow."""

from __future__ import annotations

from pathlib import Path

from dlrun.config.editor_schema import schema_text
from dlrun.errors import DlrunError
from dlrun.store import files


def export_schema(out: str | Path | None = None) -> str:
    """The schema text; also written (atomically) to `out` when given. Raises DlrunError when `out`
    cannot be written."""
    text = schema_text()
    if out is not None:
        try:
            files.write_text(out, text)
        except OSError as exc:
            reason = exc.strerror or exc
            raise DlrunError(f"{out}: cannot write the schema ({reason}); choose a writable path") from None
    return text
