-- A stand-in for a site-provided tool stack, delivered as HPC sites do: as a module.
whatis("Name: climate-tools")
whatis("Version: 1.0")
whatis("Description: climate analysis tools (demo module of the mini cluster)")
setenv("CLIMATE_TOOLS_HOME", "/opt/climate-tools/1.0")
setenv("CLIMATE_TOOLS_VERSION", "1.0")
prepend_path("PATH", "/opt/climate-tools/1.0/bin")
