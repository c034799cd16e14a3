"""Modal dialogs and drill-down screens."""
