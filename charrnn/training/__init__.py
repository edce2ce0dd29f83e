"""Training: the run's config and schedule, the planning rules, the TBPTT batches, the loop, evaluation,
weight averaging, the training state in a checkpoint, precision, several processes and the run
directory.

It never imports `charrnn.infer`: previews are drawn by the CLI from the weights the loop reports.
"""
