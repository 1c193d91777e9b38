"""gradpath's Hydra sweeper plugin (found through the hydra_plugins namespace package)."""
