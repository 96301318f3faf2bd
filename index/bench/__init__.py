"""The research lab: benchmark queries, metrics, the evaluation runner, its report and plots; the engine never imports it."""
