"""The HTTP service: app factory, routes, dependencies, engine, keys, audit and metrics."""
