"""The per-folder overrides (`dataset.subsets`) as a table on the Folders step.

One row per concept folder the last scan found (and one per entry whose folder it did not find,
marked `gone`): its images, repeats, `reg` when it trains as regularisation, and the values it
sets itself. Enter on
a row asks the screen to open the edit form for that folder; Delete clears the folder's values.
The widget holds the list as the draft does (entries with only the keys they set).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from engine.config.settings_subsets import describe_entry, folder_name

_SHORT = {"num_repeats": "rep", "is_reg": "reg", "caption_extension": "ext", "class_tokens": "tokens",
          "keep_tokens": "keep", "shuffle_caption": "shuffle", "flip_aug": "flip", "color_aug": "colour",
          "random_crop": "crop", "caption_dropout_rate": "drop"}


def short_overrides(entry: dict[str, Any]) -> str:
    """`rep 3, keep 2, ext .caption`: an entry's values in a table cell's width."""
    text = describe_entry(entry)
    for key, short in _SHORT.items():
        text = text.replace(key + " ", short + " ")
    return "—" if text == "no overrides" else text


class SubsetsTable(DataTable):
    DEFAULT_CSS = """
    SubsetsTable { height: auto; max-height: 8; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete", "clear_row", "Clear folder's values", show=False),
    ]

    class Changed(Message):
        def __init__(self, table: SubsetsTable, value: list[dict[str, Any]]):
            super().__init__()
            self.table = table
            self.value = value

    class EditRequested(Message):
        """Open the form for one folder: its name, its entry (or {}), and its scanned facts."""

        def __init__(self, table: SubsetsTable, folder: str, entry: dict[str, Any], concept: Any | None):
            super().__init__()
            self.table = table
            self.folder = folder
            self.entry = entry
            self.concept = concept

    def __init__(self, value: list[dict[str, Any]], **kwargs: Any):
        super().__init__(cursor_type="row", zebra_stripes=False, show_cursor=True, **kwargs)
        self._value = [dict(e) for e in value or []]
        self._concepts: list[Any] = []

    def on_mount(self) -> None:
        self.add_columns("Folder", "Img", "Rep", "", "Own values")
        self._fill()

    # ------------------------------------------------------------------ value

    @property
    def value(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._value]

    @value.setter
    def value(self, entries: list[dict[str, Any]]) -> None:
        self._value = [dict(e) for e in entries or []]
        self._fill()

    def show_concepts(self, concepts: list[Any]) -> None:
        """The folders of the latest scan."""
        self._concepts = list(concepts)
        self._fill()

    def apply(self, folder: str, entry: dict[str, Any] | None) -> None:
        """Set (or, with None or an entry of only image_dir, remove) one folder's values."""
        index = self._index_of(folder)
        keep = entry is not None and any(key != "image_dir" for key in entry)
        if index is None and keep:
            self._value.append(dict(entry))
        elif index is not None and keep:
            self._value[index] = dict(entry)
        elif index is not None:
            del self._value[index]
        self._fill()
        self.post_message(self.Changed(self, self.value))

    # ------------------------------------------------------------------ rows

    def _index_of(self, folder: str) -> int | None:
        return next((i for i, e in enumerate(self._value) if folder_name(e) == folder), None)

    def folder_rows(self) -> list[tuple[str, dict[str, Any], Any | None]]:
        """(folder name, its entry or {}, its scanned concept or None) in table order."""
        rows = []
        named = set()
        for concept in self._concepts:
            index = self._index_of(concept.name)
            rows.append((concept.name, self._value[index] if index is not None else {}, concept))
            named.add(concept.name)
        rows += [(folder_name(e), e, None) for e in self._value if folder_name(e) not in named]
        return rows

    def _fill(self) -> None:
        if not self.columns:
            return
        row = self.cursor_row
        self.clear()
        for name, entry, concept in self.folder_rows():
            images = str(concept.image_count) if concept is not None else "?"
            repeats = str(concept.repeats) if concept is not None else str(entry.get("num_repeats", "?"))
            kind = "gone" if concept is None else "reg" if concept.is_regularization else ""
            shown = name if len(name) <= 16 else name[:15] + "…"
            self.add_row(shown, images, repeats, kind, short_overrides(entry), key=name)
        if self.row_count:
            self.move_cursor(row=min(row, self.row_count - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        name, entry, concept = self.folder_rows()[event.cursor_row]
        self.post_message(self.EditRequested(self, name, dict(entry), concept))

    def action_clear_row(self) -> None:
        rows = self.folder_rows()
        if rows:
            self.apply(rows[self.cursor_row][0], None)
