"""ALRF Studio's desktop app and command line.

:mod:`app` starts Qt and opens :class:`main_window.MainWindow`. The window is split into
panels: :mod:`canvas` (the magnified face and its point layers), :mod:`image_list`,
:mod:`legend`, :mod:`thumbnails` and :mod:`adjustments`. :mod:`labelling` turns clicks and
keys into store edits, and :mod:`undo` replays them. :mod:`actions` defines every action and
shortcut. Features install themselves on the window through its hooks: :mod:`file_actions`
(import, export, build dataset), :mod:`assist_ui` and :mod:`training_panel` (pre-labelling and
retraining), and :mod:`review` with its docks (review mode and agreement). The window keeps no
label state of its own: every edit goes through :mod:`s2ld_core.store` when it happens.

:mod:`cli` is the headless entry point (``alrf-studio``); it imports no Qt unless it opens the
window.
"""
