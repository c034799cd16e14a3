"""The Textual operator console (reads store/, acts through the admin API).

`tui.app.run()` starts it in the terminal; `tui.app.OmenConsole` is the app (tests drive it
with Pilot). `tui.model` holds its data layer and imports no Textual.
"""
