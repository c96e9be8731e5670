"""Model registry: register, version, stage and look up models (HF-format directories or MLflow models) by reference to MLflow."""
