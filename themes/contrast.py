"""WCAG contrast of the themes' text and keys, as a terminal shows them in 256 colours and in 16.

Textual blends a colour with alpha (`$text-muted` is "auto 60%") over the background it sits on;
a terminal limited to 16 colours then shows the nearest ANSI colour Rich picks
(`Color.downgrade(ColorSystem.STANDARD)`), drawn with Rich's standard palette. Both are computed
here from the theme itself, so a test holds every theme to WCAG's 4.5:1 for text and 3:1 for
badges and keys (non-text marks a user must see).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.color import Color as RichColor
from rich.color import ColorSystem
from rich.color_triplet import ColorTriplet
from rich._palettes import STANDARD_PALETTE
from textual.color import Color
from textual.theme import Theme

TEXT, MARK = 4.5, 3.0

# (what it is, foreground variable, background variable, minimum). The pairs the app draws: its
# CSS and panels use these variables (see tui_lora/wizard.tcss, dashboard/).
PAIRS: tuple[tuple[str, str, str, float], ...] = tuple(
    [(f"text on {bg}", "foreground", bg, TEXT) for bg in ("background", "surface", "panel")]
    + [(f"muted text on {bg}", "text-muted", bg, TEXT) for bg in ("background", "surface", "panel")]
    + [(f"dashboard labels on {bg}", "foreground-muted", bg, TEXT) for bg in ("background", "surface")]
    + [(f"disabled labels and placeholders on {bg}", "text-disabled", bg, TEXT) for bg in ("background", "surface")]
    + [("footer words", "footer-description-foreground", "footer-background", TEXT)]
    + [(f"{word} words on {bg}", word, bg, TEXT) for word in ("accent", "error", "warning", "success")
       for bg in ("background", "surface")]
    + [("footer keys", "footer-key-foreground", "footer-background", MARK)]
    + [(f"{word} badge in the header", word, "panel", MARK) for word in ("accent", "error", "warning", "success")]
)


@dataclass(frozen=True)
class Contrast:
    what: str
    colours: int  # 256 or 16
    ratio: float
    minimum: float
    foreground: str
    background: str

    @property
    def ok(self) -> bool:
        return self.ratio >= self.minimum

    def __str__(self) -> str:
        return (f"{self.what} ({self.colours} colours): {self.ratio:.2f}:1, needs {self.minimum:g}:1 "
                f"({self.foreground} on {self.background})")


def _resolve(variables: dict[str, str], name: str, under: Color) -> Color:
    """The opaque colour `name` shows over `under`, as Textual composes it."""
    value = variables[name].strip()
    if value.startswith("auto"):
        alpha = float(value.split()[1].rstrip("%")) / 100 if len(value.split()) > 1 else 1.0
        return under + under.get_contrast_text(alpha)
    if value.startswith("$"):
        return _resolve(variables, value[1:], under)
    colour = Color.parse(value)
    return under + colour if colour.a < 1 else colour


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def ratio(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def in_16_colours(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The ANSI colour Rich shows for `rgb` on a 16-colour terminal, as RGB."""
    number = RichColor.from_triplet(ColorTriplet(*rgb)).downgrade(ColorSystem.STANDARD).number
    return tuple(STANDARD_PALETTE[number])  # type: ignore[return-value]


def contrasts(theme: Theme) -> list[Contrast]:
    variables = {**theme.to_color_system().generate(), **(theme.variables or {})}
    found = []
    for what, fg_name, bg_name, minimum in PAIRS:
        background = _resolve(variables, bg_name, Color(0, 0, 0) if theme.dark else Color(255, 255, 255))
        foreground = _resolve(variables, fg_name, background)
        fg, bg = foreground.rgb, background.rgb
        found.append(Contrast(what, 256, ratio(fg, bg), minimum, foreground.hex, background.hex))
        fg16, bg16 = in_16_colours(fg), in_16_colours(bg)
        found.append(Contrast(what, 16, ratio(fg16, bg16), minimum, "#%02x%02x%02x" % fg16, "#%02x%02x%02x" % bg16))
    return found


if __name__ == "__main__":  # python -m themes.contrast: every pair of every theme
    from . import THEMES

    for name, theme in THEMES.items():
        for contrast in contrasts(theme):
            print(("  ok " if contrast.ok else "FAIL ") + f"{name}: {contrast}")
