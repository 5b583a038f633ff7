"""Reports: sanity checks of the figures, then e-mails (to come)."""
