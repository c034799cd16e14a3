"""The Textual operator console (reads store/, acts through the admin API).

Installed as `omen_tui` (this folder is tui/ in the repository). `omen_tui.app.run()` starts it
in the terminal; `omen_tui.app.OmenConsole` is the app (tests drive it with Pilot).
`omen_tui.model` holds its data layer and imports no Textual.
"""
