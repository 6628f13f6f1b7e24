"""The SLURM spawner (runs in the hub) and what only it uses: the job's settings and batch
script, the user's options (form, checks, estimate), what the cluster offers each user, the
one watch of the queue, the job channel's handler, and what users are told."""
