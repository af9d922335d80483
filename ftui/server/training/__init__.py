"""Training: the job spec contract, progress rows, encoding, the training loop, checkpoints,
LoRA and classification metrics. Each job trains in a process of its own
(`python -m ftui.server.training.train JOB_DIR`)."""
