"""SLURM as the workbench sees it: the one client that runs its commands, the field lists it
asks squeue and sacct for (``formats``), pure parsers of what they print, and the syntax of
the values it accepts.

Used by the hub's spawner and by users' kernels; imports nothing else of the workbench.
"""
