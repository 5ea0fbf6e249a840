"""The wizard's screens: start, model, folders, parameters, review, and modal dialogs."""
