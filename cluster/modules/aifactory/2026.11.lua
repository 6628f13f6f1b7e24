-- The AI Factory Workbench Python stack (JupyterLab, Dask, xarray) for batch scripts.
whatis("Name: aifactory")
whatis("Description: AI Factory Workbench Python environment")
setenv("AIFACTORY_VENV", "/opt/aifactory/venv")
prepend_path("PATH", "/opt/aifactory/venv/bin")
