"""Widgets of the wizard: setting fields, help panel, step bar, dataset summary."""
