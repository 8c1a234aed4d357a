"""The training / evaluation app built on videomix_dali (run from the repository root)."""
