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
            background="#121212",  # 233
            surface="#1c1c1c",  # 234
            # 235: greys from 236 up turn into the 16-colour grey (85,85,85), under which the
            # text and the error badge fall below 4.5:1 and 3:1
            panel="#262626",
            dark=True,
            variables={"text-disabled": "auto 50%"},  # disabled labels, placeholders: 4.5:1 at least
        ),
        Theme(
            name="light",
            primary="#005faf",  # 25
            secondary="#5f5f87",  # 60
            accent="#875f00",  # 94 (130 gave 4.1:1 on the surface)
            warning="#875f00",
            error="#d70000",  # 160
            # 23, a dark teal: every green turns into the 16-colour (0,170,0), 3.1:1 on white
            success="#005f5f",
            foreground="#1c1c1c",  # 234
            background="#ffffff",  # 231
            surface="#eeeeee",  # 255
            panel="#dadada",  # 253: stays white in 16 colours (252 became grey, under grey words)
            dark=False,
            variables={"text-disabled": "auto 60%", "foreground-muted": "#1c1c1cbb"},
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
                # never dimmer than the dark theme: disabled labels, placeholders and muted words
                "text-disabled": "auto 70%",
                "text-muted": "auto 85%",
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
    """Ours only: the command palette's theme list offers the documented themes, not Textual's."""
    for theme in THEMES.values():
        app.register_theme(theme)
    for name in list(app.available_themes):
        if name not in THEMES:
            app.unregister_theme(name)
