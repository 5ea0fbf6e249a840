"""tui-lora's colour themes: a dark default, a light one and a high-contrast monochrome one.

Every colour is an exact entry of the xterm 256-colour palette, so a terminal (or tmux) limited to
256 colours shows the same theme, not an approximation. The monochrome theme uses only black,
white and greys; the wizard never relies on colour alone (errors and warnings also carry words).
"""

from __future__ import annotations

from textual.theme import Theme

DEFAULT_THEME = "dark"

THEMES: dict[str, Theme] = {
    theme.name: theme
    for theme in (
        Theme(
            name="dark",
            primary="#5fafff",  # xterm 75
            secondary="#5f87af",  # 67
            accent="#ffaf00",  # 214
            warning="#ffaf00",
            error="#ff5f5f",  # 203
            success="#87d787",  # 114
            foreground="#d0d0d0",  # 252
            background="#1c1c1c",  # 234
            surface="#262626",  # 235
            panel="#3a3a3a",  # 237
            dark=True,
        ),
        Theme(
            name="light",
            primary="#005faf",  # 25
            secondary="#5f5f87",  # 60
            accent="#af5f00",  # 130
            warning="#af5f00",
            error="#d70000",  # 160
            success="#008700",  # 28
            foreground="#1c1c1c",  # 234
            background="#ffffff",  # 231
            surface="#eeeeee",  # 255
            panel="#d0d0d0",  # 252
            dark=False,
        ),
        Theme(
            name="contrast",
            primary="#ffffff",
            secondary="#bcbcbc",  # 250
            accent="#ffffff",
            warning="#ffffff",
            error="#ffffff",
            success="#ffffff",
            foreground="#ffffff",
            background="#000000",
            surface="#000000",
            panel="#444444",  # 238
            dark=True,
            luminosity_spread=0.3,
            variables={
                "block-cursor-background": "#ffffff",
                "block-cursor-foreground": "#000000",
                "block-cursor-text-style": "bold",
                "input-selection-background": "#ffffff 40%",
                "footer-key-foreground": "#ffffff",
                "border": "#ffffff",
                "border-blurred": "#808080",
            },
        ),
    )
}

ALIASES = {"mono": "contrast", "monochrome": "contrast", "high-contrast": "contrast"}


def resolve_theme_name(name: str | None) -> str | None:
    """A theme name as typed on the command line (aliases allowed), or None."""
    if not name:
        return None
    name = name.strip().lower()
    return ALIASES.get(name, name)


def register_themes(app) -> None:
    for theme in THEMES.values():
        app.register_theme(theme)
