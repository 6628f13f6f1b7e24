"""The SLURM spawner and what only it uses: job script, job channel, in-job launcher."""
