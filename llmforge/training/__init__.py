"""Training: fine-tuning and pre-training of language models, from one process to torchrun across nodes, tracked in MLflow."""
