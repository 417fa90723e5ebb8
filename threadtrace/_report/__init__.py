"""The contention report: the model (built from metric points by one pure function) and its text."""
