"""The numbered views: 1 Overview, 2 Routing, 3 Providers, 4 GPU."""
