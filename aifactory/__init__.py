"""AI Factory Workbench: site config, SLURM access, CLI and in-notebook helpers."""
