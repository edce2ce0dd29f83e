"""Inference: the engines behind one protocol (numpy on CPU without torch; torch for GPUs), the
sampling weights of a checkpoint, the next-character distribution and the writer's controls, the
sampler, beam search, records, scoring and dynamic evaluation.

It never imports `charrnn.training`: a model for inference is built from the checkpoint and the model
config alone.
"""
