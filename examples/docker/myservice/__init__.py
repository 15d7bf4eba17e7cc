"""The sample service that ``examples/docker/Dockerfile`` packages."""
