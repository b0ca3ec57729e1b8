"""Physics models: predictions stored beside results, and the same equations drive the simulated cell."""
