"""The Textual operator console (reads store/, acts through the admin API)."""
